"""Lineage from a file: hash it, find the PROV entity with that content, and walk back to what made it.

`pinnprov lineage FILE` answers the question provenance exists for: which run, data set, settings and steering
produced this velocity model (network, checkpoint, figure)? The file is found by content (sha256 in the
`artifact` table, schema version 6), so a copy, a renamed file or one fetched from a cluster node still
finds its run. The walk: the artifact -> its run (identity, host, device, pinnprov version and source revision
recorded at run start) -> the run's data set and hyperparameters -> every adaptation with its agent and reason
-> the runs it continues (resumed_from, retry_of), each with the same facts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinnprov.core import vocabulary as v
from pinnprov.core.artifacts import ROLE_CHECKPOINT, path_of_uri, sha256_file
from pinnprov.store.run_relations import RESUMED_FROM, RETRY_OF, RunRelation, relations

if TYPE_CHECKING:
    from pinnprov.store.base import Store

_ARTIFACT_COLUMNS = ("artifact_id", "run_id", "epoch", "at", "role", "uri", "sha256", "size_bytes", "media_type")
_RUN_COLUMNS = ("run_id", "run_name", "experiment", "status", "started_at", "ended_at", "epochs", "host", "device",
                "user_name", "tensorflow_version", "service", "dataset_name", "dataset_sha256", "dataset_picks",
                "dataset_source")
LINEAGE_FORMATS = ("text", "prov-json")


@dataclass(frozen=True)
class Produced:
    """One `artifact` row: a file a run wrote."""

    artifact_id: str
    run_id: str
    epoch: int
    at: float
    role: str
    uri: str
    sha256: str
    size_bytes: int
    media_type: str

    @property
    def path(self) -> str:
        return path_of_uri(self.uri)


@dataclass
class RunFacts:
    """What lineage tells about one run."""

    run: dict[str, Any]
    hyperparameters: list[tuple[str, str]]
    adaptations: list[dict[str, Any]]
    summary: dict[str, float]
    resources: dict[str, str]


@dataclass
class Lineage:
    sha256: str
    artifact: Produced
    facts: RunFacts
    earlier: list[tuple[RunRelation, RunFacts]] = field(default_factory=list)  # runs this one continues
    also: list[Produced] = field(default_factory=list)  # other generations of the same content


def _produced(row: tuple[Any, ...]) -> Produced:
    values = dict(zip(_ARTIFACT_COLUMNS, row, strict=True))
    return Produced(values["artifact_id"], values["run_id"], int(values["epoch"] or 0), float(values["at"] or 0.0),
                    values["role"] or "", values["uri"] or "", values["sha256"] or "", int(values["size_bytes"] or 0),
                    values["media_type"] or "")


def _select_artifacts(where: str) -> str:
    columns = ", ".join(f'"{c}"' for c in _ARTIFACT_COLUMNS)
    return f'SELECT {columns} FROM artifact WHERE {where} ORDER BY "at" DESC, artifact_id'


def find_artifacts(store: Store, sha256: str) -> list[Produced]:
    """Every generation of a file with this content, newest first."""
    rows = store.execute(_select_artifacts("sha256 = :sha"), {"sha": sha256.lower()}).rows
    return [_produced(row) for row in rows]


def artifacts_of(store: Store, run_id: str, role: str | None = None) -> list[Produced]:
    """The files a run produced (of one role), newest first."""
    where = "run_id = :run_id" + (' AND "role" = :role' if role else "")
    rows = store.execute(_select_artifacts(where), {"run_id": run_id, "role": role or ""}).rows
    return [_produced(row) for row in rows]


def latest_checkpoint(store: Store, run_id: str) -> Produced | None:
    """The run's checkpoint with the most epochs (what `pinnprov train --resume RUN` continues from)."""
    checkpoints = artifacts_of(store, run_id, ROLE_CHECKPOINT)
    return max(checkpoints, key=lambda p: (p.epoch, p.at)) if checkpoints else None


def run_facts(store: Store, run_id: str) -> RunFacts:
    params = {"run_id": run_id}
    rows = store.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM run WHERE run_id = :run_id", params).rows
    run = dict(zip(_RUN_COLUMNS, rows[0], strict=True)) if rows else {"run_id": run_id}
    hyper = [(str(r[0]), str(r[1])) for r in store.execute(
        'SELECT "name", "value" FROM run_hyperparameter WHERE run_id = :run_id ORDER BY "name"', params).rows]
    adaptations = [dict(zip(("epoch", "at", "parameter", "old_value", "new_value", "agent", "reason"), r, strict=True))
                   for r in store.execute(
                       'SELECT "epoch", "at", parameter, old_value, new_value, agent, reason FROM adaptation '
                       'WHERE run_id = :run_id ORDER BY "epoch", "at", adaptation_id', params).rows]
    summary = {str(r[0]): float(r[1]) for r in store.execute(
        'SELECT "name", "value" FROM run_summary WHERE run_id = :run_id ORDER BY "name"', params).rows
        if r[1] is not None}
    wanted = (v.RESOURCE_PINNPROV_VERSION, v.RESOURCE_SOURCE_REVISION, "service.version")
    resources = {str(r[0]): str(r[1]) for r in store.execute(
        'SELECT "name", "value" FROM run_resource WHERE run_id = :run_id ORDER BY "name"', params).rows
        if r[0] in wanted}
    return RunFacts(run, hyper, adaptations, summary, resources)


def trace(store: Store, sha256: str) -> Lineage | None:
    """The lineage of content `sha256`, or None when no run of this store produced it."""
    found = find_artifacts(store, sha256)
    if not found:
        return None
    artifact = found[0]
    lineage = Lineage(sha256, artifact, run_facts(store, artifact.run_id), also=found[1:])
    seen = {artifact.run_id}
    current = artifact.run_id
    while True:  # the chain of runs this one continues: resumed from, retry of
        earlier = [r for r in relations(store, current)
                   if r.run_id == current and r.relation in (RESUMED_FROM, RETRY_OF) and r.related_run_id not in seen]
        if not earlier:
            return lineage
        relation = earlier[0]
        seen.add(relation.related_run_id)
        lineage.earlier.append((relation, run_facts(store, relation.related_run_id)))
        current = relation.related_run_id


def lineage_of_file(store: Store, path: Path | str) -> Lineage | None:
    return trace(store, sha256_file(path))


def _when(seconds: Any) -> str:
    if seconds is None:
        return "?"
    return dt.datetime.fromtimestamp(float(seconds), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _run_lines(facts: RunFacts, indent: str = "") -> list[str]:
    r = facts.run
    name = r.get("run_name") or r["run_id"]
    lines = [f"{indent}run        {name} ({r['run_id']}), experiment {r.get('experiment') or '-'}, "
             f"{r.get('status') or 'running'} after {r.get('epochs') if r.get('epochs') is not None else '?'} epochs",
             f"{indent}           {_when(r.get('started_at'))} .. {_when(r.get('ended_at'))}",
             f"{indent}data set   {r.get('dataset_name') or '?'} sha256 {r.get('dataset_sha256') or '?'} "
             f"({r.get('dataset_picks') or '?'} picks, {r.get('dataset_source') or '?'})",
             f"{indent}where      host {r.get('host') or '?'}, device {r.get('device') or '?'}, user "
             f"{r.get('user_name') or '?'}, TensorFlow {r.get('tensorflow_version') or '?'}",
             f"{indent}code       pinnprov {facts.resources.get(v.RESOURCE_PINNPROV_VERSION, '?')}, source revision "
             f"{facts.resources.get(v.RESOURCE_SOURCE_REVISION) or 'unknown (not run from a git checkout)'}"]
    if facts.summary:
        lines.append(f"{indent}result     " + ", ".join(f"{k} {val:.6g}" for k, val in facts.summary.items()))
    lines.append(f"{indent}settings   {len(facts.hyperparameters)} hyperparameters")
    lines += [f"{indent}  {name} = {value}" for name, value in facts.hyperparameters]
    lines.append(f"{indent}steering   {len(facts.adaptations)} adaptations" + ("" if facts.adaptations else " (none)"))
    lines += [f"{indent}  epoch {a['epoch']}: {a['parameter']} {a['old_value']} -> {a['new_value']} by {a['agent']}"
              + (f": {a['reason']}" if a.get("reason") else "") for a in facts.adaptations]
    return lines


def render(lineage: Lineage, file: str = "") -> str:
    """The derivation as text, the file first, then its run, then the runs it continues."""
    a = lineage.artifact
    lines = [f"file       {file or a.path}",
             f"sha256     {lineage.sha256} ({a.size_bytes} bytes, {a.media_type})",
             f"entity     artifact/{a.artifact_id}: role {a.role}, generated at epoch {a.epoch}, {_when(a.at)}",
             f"written as {a.uri}"]
    lines += _run_lines(lineage.facts)
    for relation, facts in lineage.earlier:
        lines.append(f"which {relation.relation.replace('_', ' ')} (by {relation.agent or '?'}"
                     + (f": {relation.reason}" if relation.reason else "") + ")")
        lines += _run_lines(facts, "  ")
    if lineage.also:
        lines.append(f"the same content was also generated by {len(lineage.also)} other record(s): "
                     + ", ".join(f"{p.run_id} ({p.role})" for p in lineage.also[:5]))
    return "\n".join(lines)


def to_prov_json(store: Store, lineage: Lineage) -> str:
    """The PROV-JSON document of the generating run (its entity for this file included), and the runs it continues."""
    from pinnprov.store.prov_export import build_document, serialize

    doc = build_document(store, lineage.artifact.run_id)
    for _, facts in lineage.earlier:
        doc.update(build_document(store, facts.run["run_id"]))
    return serialize(doc.unified(), "json")


def lineage(store: Store, file: Path | str) -> Lineage | None:
    """Public API (`pinnprov.lineage`): the derivation of `file` from `store`, None when no run produced it.

        with pinnprov.open_store("sqlite:///prov.db") as store:
            found = pinnprov.lineage(store, "runs/x/velocity_pinn.npy")
            print(found.facts.run["run_name"], found.facts.run["dataset_sha256"])
    """
    return lineage_of_file(store, file)
