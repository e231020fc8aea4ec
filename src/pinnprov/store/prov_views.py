"""The W3C PROV core relations as views over the domain tables (portable SQL: SQLite and MonetDB).

Identifiers are local names in the pinnprov namespace (prov_export.py adds the prefix):
  activities  run/<run_id> (pinnprov:Training, or pinnprov:Ensemble for an ensemble's aggregation),
              adaptation/<span_id> (pinnprov:Adaptation)
  entities    hp/<run_id>/<name> (Hyperparameter), dataset/<sha256> (Dataset, shared by runs on the same
              picks), epoch/<run_id>/<epoch> (EpochMetrics), alert/<alert_id> (Alert),
              artifact/<span_id> (Artifact: a file, value = its URI, with its sha256 in `artifact`),
              snapshot/<span_id> (ModelSnapshot: the velocity model at an epoch)
  agents      agent/user:<name> (prov:Person), agent/host:<host>, agent/process:<host>:<pid>
              (prov:SoftwareAgent, the trainer), agent/<adaptation agent> (user:<name> is a Person,
              schedule / trainer / rule:<name> are SoftwareAgents), agent/rule:<rule> for alert rules
Every relation carries run_id so one run's provenance is a simple filter. An epoch entity's `value` is '': its
numbers are in epoch_metric (which the export reads), and a DOUBLE cast to text differs between the dialects
(SQLite '101.0', MonetDB '101'), which would break SQLite/MonetDB parity of the views.
"""

from __future__ import annotations

from dataclasses import dataclass

from pinnprov.store.dialects import Dialect
from pinnprov.store.run_relations import ENSEMBLE_SERVICE


@dataclass(frozen=True)
class View:
    name: str
    columns: tuple[str, ...]
    select: str  # portable SQL; identifiers MonetDB treats as keywords are double-quoted
    doc: str = ""


_EPOCH_ID = "'epoch/' || run_id || '/' || CAST(\"epoch\" AS VARCHAR(12))"
_PROCESS_ID = "'agent/process:' || COALESCE(host, '') || ':' || CAST(process_pid AS VARCHAR(20))"

VIEWS: tuple[View, ...] = (
    View(
        "activity",
        ("activity_id", "prov_type", "run_id", "label", "started_at", "ended_at"),
        f"""
SELECT 'run/' || run_id,
       CASE WHEN service = '{ENSEMBLE_SERVICE}' THEN 'pinnprov:Ensemble' ELSE 'pinnprov:Training' END,
       run_id, COALESCE(run_name, run_id), started_at, ended_at FROM run
UNION ALL
SELECT 'adaptation/' || adaptation_id, 'pinnprov:Adaptation', run_id, COALESCE(parameter, ''), at, at
FROM adaptation""",
        "Training runs (and ensembles of them) and the adaptations applied to them.",
    ),
    View(
        "entity",
        ("entity_id", "prov_type", "run_id", "label", "value"),
        f"""
SELECT 'hp/' || run_id || '/' || "name", 'pinnprov:Hyperparameter', run_id, "name", "value" FROM run_hyperparameter
UNION ALL
SELECT 'dataset/' || dataset_sha256, 'pinnprov:Dataset', run_id, COALESCE(dataset_name, ''),
       COALESCE(dataset_source, '')
FROM run WHERE dataset_sha256 IS NOT NULL AND dataset_sha256 <> ''
UNION ALL
SELECT {_EPOCH_ID}, 'pinnprov:EpochMetrics', run_id, 'epoch ' || CAST("epoch" AS VARCHAR(12)), ''
FROM epoch_metric
UNION ALL
SELECT 'alert/' || alert_id, 'pinnprov:Alert', run_id, COALESCE(rule, ''), COALESCE(message, '') FROM alert
UNION ALL
SELECT 'artifact/' || artifact_id, 'pinnprov:Artifact', run_id, COALESCE("role", ''), COALESCE("uri", '')
FROM artifact
UNION ALL
SELECT 'snapshot/' || snapshot_id, 'pinnprov:ModelSnapshot', run_id,
       COALESCE(kind, '') || ' epoch ' || CAST("epoch" AS VARCHAR(12)), '' FROM model_snapshot""",
        "Hyperparameters, data sets, per-epoch metrics, alerts, files the runs produced and model snapshots.",
    ),
    View(
        "agent",
        ("agent_id", "prov_type", "label"),
        f"""
SELECT 'agent/user:' || user_name, 'prov:Person', 'user:' || user_name FROM run
WHERE user_name IS NOT NULL AND user_name <> ''
UNION
SELECT 'agent/host:' || host, 'pinnprov:Host', host FROM run WHERE host IS NOT NULL AND host <> ''
UNION
SELECT {_PROCESS_ID}, 'prov:SoftwareAgent', COALESCE(service, 'trainer') FROM run WHERE process_pid IS NOT NULL
UNION
SELECT 'agent/' || agent, CASE WHEN agent LIKE 'user:%' THEN 'prov:Person' ELSE 'prov:SoftwareAgent' END, agent
FROM adaptation WHERE agent IS NOT NULL AND agent <> ''
UNION
SELECT 'agent/rule:' || rule, 'prov:SoftwareAgent', 'rule:' || rule FROM alert WHERE rule IS NOT NULL""",
        "People, hosts, trainer processes, schedules and alert rules.",
    ),
    View(
        "used",
        ("activity_id", "entity_id", "run_id", "prov_role", "at"),
        """
SELECT 'run/' || h.run_id, 'hp/' || h.run_id || '/' || h."name", h.run_id, 'hyperparameter', r.started_at
FROM run_hyperparameter h LEFT JOIN run r ON r.run_id = h.run_id
UNION ALL
SELECT 'run/' || run_id, 'dataset/' || dataset_sha256, run_id, 'data', started_at
FROM run WHERE dataset_sha256 IS NOT NULL AND dataset_sha256 <> ''""",
        "The training activity used its hyperparameters and its data set.",
    ),
    View(
        "was_generated_by",
        ("entity_id", "activity_id", "run_id", "at"),
        f"""
SELECT {_EPOCH_ID}, 'run/' || run_id, run_id, ended_at FROM epoch_metric
UNION ALL
SELECT 'artifact/' || artifact_id, 'run/' || run_id, run_id, at FROM artifact
UNION ALL
SELECT 'snapshot/' || snapshot_id, 'run/' || run_id, run_id, at FROM model_snapshot""",
        "Each epoch's metrics, file and model snapshot was generated by the training activity (at its time).",
    ),
    View(
        "was_associated_with",
        ("activity_id", "agent_id", "run_id", "prov_role"),
        f"""
SELECT 'run/' || run_id, 'agent/user:' || user_name, run_id, 'launcher' FROM run
WHERE user_name IS NOT NULL AND user_name <> ''
UNION ALL
SELECT 'run/' || run_id, {_PROCESS_ID}, run_id, 'trainer' FROM run WHERE process_pid IS NOT NULL
UNION ALL
SELECT 'run/' || run_id, 'agent/host:' || host, run_id, 'host' FROM run WHERE host IS NOT NULL AND host <> ''
UNION ALL
SELECT 'adaptation/' || adaptation_id, 'agent/' || agent, run_id, 'decider' FROM adaptation
WHERE agent IS NOT NULL AND agent <> ''""",
        "Who ran the training (user, process, host) and who decided each adaptation.",
    ),
    View(
        "was_informed_by",
        ("informed_id", "informant_id", "run_id"),
        """
SELECT 'adaptation/' || adaptation_id, 'run/' || run_id, run_id FROM adaptation
UNION ALL
SELECT 'run/' || run_id, 'run/' || related_run_id, run_id FROM run_relation WHERE relation = 'retry_of'
UNION ALL
SELECT 'run/' || related_run_id, 'run/' || run_id, related_run_id FROM run_relation WHERE relation = 'member_of'
UNION ALL
SELECT 'run/' || run_id, 'run/' || related_run_id, run_id FROM run_relation WHERE relation = 'resumed_from'""",
        "Adaptations were informed by the training they changed; a retried run by the failed attempt it repeats; an "
        "ensemble by each of its members; a resumed run by the run whose checkpoint it continued.",
    ),
    View(
        "was_derived_from",
        ("generated_entity_id", "used_entity_id", "run_id"),
        f"""
SELECT 'alert/' || alert_id, {_EPOCH_ID}, run_id FROM alert WHERE "epoch" IS NOT NULL
UNION ALL
SELECT 'artifact/' || a.artifact_id, 'dataset/' || r.dataset_sha256, a.run_id
FROM artifact a JOIN run r ON r.run_id = a.run_id WHERE r.dataset_sha256 IS NOT NULL AND r.dataset_sha256 <> ''
UNION ALL
SELECT 'snapshot/' || m.snapshot_id, 'dataset/' || r.dataset_sha256, m.run_id
FROM model_snapshot m JOIN run r ON r.run_id = m.run_id
WHERE r.dataset_sha256 IS NOT NULL AND r.dataset_sha256 <> ''""",
        "An alert was derived from the epoch metrics it evaluated; a run's files and model snapshots from its data "
        "set.",
    ),
    View(
        "was_attributed_to",
        ("entity_id", "agent_id", "run_id"),
        """
SELECT 'alert/' || alert_id, 'agent/rule:' || rule, run_id FROM alert WHERE rule IS NOT NULL
UNION ALL
SELECT 'hp/' || h.run_id || '/' || h."name", 'agent/user:' || r.user_name, h.run_id
FROM run_hyperparameter h JOIN run r ON r.run_id = h.run_id WHERE r.user_name IS NOT NULL AND r.user_name <> ''""",
        "Alerts are attributed to their rule; hyperparameters to the user who launched the run.",
    ),
)


def run_activity_id(run_id: str) -> str:
    """The id the views give a run's training activity (kept next to the SQL that builds it)."""
    return f"run/{run_id}"


def epoch_entity_id(run_id: str, epoch: int) -> str:
    """The id the views give an epoch's metrics entity."""
    return f"epoch/{run_id}/{epoch}"


def artifact_entity_id(artifact_id: str) -> str:
    """The id the views give a file a run produced."""
    return f"artifact/{artifact_id}"


def snapshot_entity_id(snapshot_id: str) -> str:
    return f"snapshot/{snapshot_id}"


def hyperparameter_entity_id(run_id: str, name: str) -> str:
    return f"hp/{run_id}/{name}"


def create_view_sql(view: View, dialect: Dialect) -> str:
    """CREATE VIEW with an explicit column list, so both dialects name the columns identically."""
    columns = ", ".join(dialect.quote(column) for column in view.columns)
    select = view.select.strip()
    if dialect.name == "monetdb":
        return f"CREATE OR REPLACE VIEW {dialect.quote(view.name)} ({columns}) AS\n{select}"
    return f"CREATE VIEW IF NOT EXISTS {view.name} ({columns}) AS\n{select}"
