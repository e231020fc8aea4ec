"""Alert rules evaluated in the collector, with or without Kibana.

Integration (the collector service):

    from pinnprov.collector.alerts import AlertEngine, StoreSteering, load_rules
    rules = load_rules(config_dict.get("rules"))            # ValueError "rule 'x': ..." at start
    engine = AlertEngine(rules, steer=StoreSteering(store_url), run_lookup=store_run_lookup(store_url))
    pipeline = Pipeline(sinks, processors=[engine])          # the SAME engine for every pipeline
    ...
    engine.close()                                           # at shutdown, after the pipelines
"""

from pinnprov.collector.alerts.actions import ActionDispatcher, SteerFunction
from pinnprov.collector.alerts.config import load_rules, load_rules_file
from pinnprov.collector.alerts.engine import AlertEngine, alert_id
from pinnprov.collector.alerts.rules import Rule, Scope
from pinnprov.collector.alerts.state import StoreAlertState
from pinnprov.collector.alerts.steering import StoreSteering
from pinnprov.store.alert_history import store_run_lookup

__all__ = [
    "ActionDispatcher",
    "AlertEngine",
    "Rule",
    "Scope",
    "SteerFunction",
    "StoreAlertState",
    "StoreSteering",
    "alert_id",
    "load_rules",
    "load_rules_file",
    "store_run_lookup",
]
