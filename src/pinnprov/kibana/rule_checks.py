"""Checks of one `.index-threshold` alerting rule file, against the limits Kibana enforces at create time.

The limits are Kibana's own (read in elastic/kibana, then written down here, never taken from importer.py):
- body keys: the create-rule body schema (x-pack/plugins/alerting/common/routes/rule/apis/create/schemas/
  v1.ts: name, rule_type_id, enabled, consumer, tags, throttle, params, schedule, actions, notify_when,
  alert_delay, flapping), action keys and `frequency` {summary, notify_when, throttle} from the same file;
  `throttle` only at one level (rule or action) and only with notify_when onThrottleInterval;
- params: src/platform/packages/shared/response-ops/rule_params/index_threshold/v1.ts: aggType
  count|avg|min|max|sum (aggField unless count), groupBy all|top (top needs termField and termSize),
  termSize 1..MAX_GROUPS (1000, common/constants.ts), timeWindowSize >= 1, timeWindowUnit s|m|h|d,
  thresholdComparator > < >= <= between notBetween, threshold 1 or 2 numbers (2 for the between ones);
- action groups of .index-threshold: `threshold met` (and `recovered`);
- fields: every field a rule reads exists in the index mapping with a suitable type.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}
RULE_API_KEYS = {"name", "rule_type_id", "enabled", "consumer", "tags", "throttle", "params", "schedule", "actions",
                 "notify_when", "alert_delay", "flapping"}
ACTION_KEYS = {"group", "id", "params", "frequency", "uuid", "alerts_filter", "use_alert_data_for_template"}
FREQUENCY_KEYS = {"summary", "notify_when", "throttle"}
NOTIFY_WHEN = {"onActionGroupChange", "onActiveAlert", "onThrottleInterval"}
AGG_TYPES = {"count", "avg", "min", "max", "sum"}
GROUP_BY = {"all", "top"}
TIME_UNITS = {"s", "m", "h", "d"}
COMPARATORS = {">", "<", ">=", "<=", "between", "notBetween"}
BETWEEN = {"between", "notBetween"}
MAX_GROUPS = 1000
ACTION_GROUPS = {"threshold met", "recovered"}
DURATION = re.compile(r"^[1-9][0-9]*[smhd]$")
KUERY_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*(?::|>=|<=|>|<)")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def params_problems(params: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    agg = params.get("aggType", "count")
    if agg not in AGG_TYPES:
        problems.append(f"aggType {agg!r}: must be one of {', '.join(sorted(AGG_TYPES))}")
    if agg != "count" and not params.get("aggField"):
        problems.append("aggField is required unless aggType is count")
    group_by = params.get("groupBy", "all")
    if group_by not in GROUP_BY:
        problems.append(f"groupBy {group_by!r}: must be all or top")
    term_size = params.get("termSize")
    if group_by == "top" and not (params.get("termField") and term_size is not None):
        problems.append("groupBy top needs termField and termSize")
    if term_size is not None and not (_is_number(term_size) and 1 <= float(term_size) <= MAX_GROUPS):
        problems.append(f"termSize {term_size!r}: must be between 1 and {MAX_GROUPS}")
    size: Any = params.get("timeWindowSize")
    if not (_is_number(size) and size >= 1):
        problems.append(f"timeWindowSize {size!r}: must be a number >= 1")
    if params.get("timeWindowUnit") not in TIME_UNITS:
        problems.append(f"timeWindowUnit {params.get('timeWindowUnit')!r}: must be one of s, m, h, d")
    comparator = params.get("thresholdComparator")
    if comparator not in COMPARATORS:
        problems.append(f"thresholdComparator {comparator!r}: must be one of {', '.join(sorted(COMPARATORS))}")
    threshold = params.get("threshold")
    wanted = 2 if comparator in BETWEEN else 1
    if not isinstance(threshold, list) or not all(_is_number(v) for v in threshold) or len(threshold) != wanted:
        problems.append(f"threshold {threshold!r}: must be a list of {wanted} number(s) for {comparator!r}")
    for key in ("index", "timeField"):
        if not params.get(key):
            problems.append(f"{key} is required")
    return problems


def actions_problems(rule: dict[str, Any], connector_ids: set[str]) -> list[str]:
    problems: list[str] = []
    actions = rule.get("actions", [])
    if not actions:
        problems.append("no actions: the rule would notify nobody")
    rule_level = rule.get("notify_when") is not None or rule.get("throttle") is not None
    for number, action in enumerate(actions):
        where = f"action {number}"
        unknown = set(action) - ACTION_KEYS
        if unknown:
            problems.append(f"{where}: keys the rule API does not accept: {', '.join(sorted(unknown))}")
        if action.get("group") not in ACTION_GROUPS:
            problems.append(f"{where}: group {action.get('group')!r} is not an action group of .index-threshold "
                            f"({', '.join(sorted(ACTION_GROUPS))})")
        if action.get("id") not in connector_ids:
            problems.append(f"{where}: connector {action.get('id')!r} is not one of the connector files")
        frequency = action.get("frequency")
        if frequency is None:
            if not rule_level:
                problems.append(f"{where}: no frequency (summary, notify_when, throttle) and none on the rule")
            continue
        if rule_level:
            problems.append(f"{where}: frequency on the action and notify_when/throttle on the rule cannot be mixed")
        if set(frequency) != FREQUENCY_KEYS:
            problems.append(f"{where}: frequency must have exactly {', '.join(sorted(FREQUENCY_KEYS))}")
        problems.extend(f"{where}: {p}" for p in _notify_problems(frequency))
    if rule_level:
        problems.extend(_notify_problems(rule))
    return problems


def _notify_problems(holder: dict[str, Any]) -> list[str]:
    notify, throttle = holder.get("notify_when"), holder.get("throttle")
    problems = []
    if notify not in NOTIFY_WHEN:
        problems.append(f"notify_when {notify!r}: must be one of {', '.join(sorted(NOTIFY_WHEN))}")
    if notify == "onThrottleInterval" and not (isinstance(throttle, str) and DURATION.match(throttle)):
        problems.append(f"throttle {throttle!r}: onThrottleInterval needs a duration like 10m or 1h")
    if notify != "onThrottleInterval" and throttle is not None:
        problems.append("throttle is only used with notify_when onThrottleInterval")
    return problems


def rule_problems(rule: dict[str, Any], fields_by_index: dict[str, dict[str, str]], seen: set[str],
                  connector_ids: set[str]) -> list[str]:
    problems: list[str] = []
    unknown = set(rule) - RULE_API_KEYS - {"id", "description"}
    if unknown:
        problems.append(f"keys the rule API does not accept: {', '.join(sorted(unknown))}")
    rule_id = str(rule.get("id", ""))
    try:
        uuid.UUID(rule_id)
    except ValueError:
        problems.append(f"id {rule_id!r} is not a UUID (Kibana before 8.17 refuses other rule ids)")
    if rule_id in seen:
        problems.append(f"id {rule_id!r} is used twice")
    seen.add(rule_id)
    if rule.get("rule_type_id") != ".index-threshold":
        return problems + [f"rule_type_id {rule.get('rule_type_id')!r}: only .index-threshold is checked"]
    params = rule.get("params", {})
    problems.extend(params_problems(params))
    problems.extend(actions_problems(rule, connector_ids))
    for index in params.get("index", []):
        fields = fields_by_index.get(index)
        if fields is None:
            problems.append(f"index {index!r} matches no index template")
            continue
        wanted = [("timeField", {"date", "date_nanos"}), ("aggField", NUMERIC), ("termField", {"keyword"})]
        for key, allowed in wanted:
            name = params.get(key)
            if name and fields.get(name) not in allowed:
                problems.append(f"{key} {name!r} is {fields.get(name, 'not mapped')}, expected {sorted(allowed)}")
        for name in KUERY_FIELD.findall(str(params.get("filterKuery", ""))):
            if name not in fields:
                problems.append(f"filterKuery uses field {name!r} that is not in the mapping of {index}")
    return problems
