"""The alert engine: a pipeline RecordProcessor that evaluates rules on every epoch and returns AlertRecords.

Plug-in point (pinnprov/collector/pipeline.py): `Pipeline(sinks, processors=[engine])`. The pipeline hands each
translated batch to `engine(records)` and writes the returned AlertRecords with the batch, so every
firing is provenance in every sink (queryable with `pinnprov alerts`).

Delivery is at least once, so the engine sees replays: a batch retried after a sink failure, or the same
batch once per sink when several pipelines share one engine (the collector gives each sink its own
pipeline; share ONE engine between them so actions run once). Per run it remembers the last epoch it
evaluated; an epoch at or below it is a replay, answered with the alerts that epoch fired the first time
(same deterministic ids, so sinks write them idempotently) and without running actions again.
Epochs of one batch are evaluated in epoch order; a genuinely late older epoch is skipped.

With a `state` (pinnprov/collector/alerts/state.py, in the store) that memory survives a restart: a run's last
evaluated epoch and rule states are loaded the first time the run is seen again, every firing is claimed
in the store before its actions run (a firing claimed before is not notified again), and replayed epochs
get their AlertRecords back from there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pinnprov.collector.alerts.actions import ActionDispatcher, SteerFunction
from pinnprov.collector.alerts.rules import METRICS, Rule, RuleState, Samples, evaluate, step
from pinnprov.collector.alerts.state import StoreAlertState
from pinnprov.collector.counters import Counters
from pinnprov.store.records import AlertRecord, EpochRecord, ProvRecord, RunEndRecord, RunStartRecord

log = logging.getLogger(__name__)

RunLookup = Callable[[str], tuple[str, str] | None]
"""run id -> (run name, experiment) from a store, for runs that started before this collector did."""
MAX_FIRED_PER_RUN = 10_000


def alert_id(rule: str, run_id: str, epoch: int) -> str:
    """Deterministic: the same rule firing at the same epoch of the same run is the same alert."""
    return hashlib.sha256(f"{rule}\x00{run_id}\x00{epoch}".encode()).hexdigest()[:32]


@dataclass
class _Run:
    run_name: str = ""
    experiment: str = ""
    known: bool = False
    last_epoch: int = -1
    states: list[RuleState | None] = field(default_factory=list)  # by rule index
    samples: dict[str, Samples] = field(default_factory=dict)
    fired: OrderedDict[int, list[AlertRecord]] = field(default_factory=OrderedDict)


def _describe(rule: Rule, value: float, bound: float, state: RuleState, epoch: EpochRecord) -> str:
    if rule.kind == "threshold":
        text = f"{rule.metric} = {value:.4g} {rule.op} {rule.threshold:.4g}"
    elif rule.kind == "no_improvement":
        text = (f"{rule.metric} has not improved on {state.best:.4g} (epoch {state.best_epoch}) for "
                f"{epoch.epoch - state.best_epoch} epochs")
    elif rule.kind == "relative_to_median":
        text = f"{rule.metric} = {value:.4g} {rule.op} {rule.factor:g} x {rule.baseline} median ({bound:.4g})"
    else:
        names = [n for n in METRICS if not math.isfinite(float(getattr(epoch, n)))] if rule.metric == "any" else []
        text = f"{', '.join(names) or rule.metric} is {value}"
    if rule.for_epochs > 1 and rule.kind != "no_improvement":
        text += f" for {rule.for_epochs} epochs"
    return text


class AlertEngine:
    """`engine(records) -> [AlertRecord, ...]`; thread-safe; `close()` waits for running actions."""

    def __init__(self, rules: Sequence[Rule], *, dispatcher: ActionDispatcher | None = None,
                 steer: SteerFunction | None = None, run_lookup: RunLookup | None = None,
                 max_runs: int = 10_000, state: StoreAlertState | None = None) -> None:
        names = [rule.name for rule in rules]
        if len(names) != len(set(names)):
            raise ValueError("alert rules: rule names must be unique")
        if steer is None and dispatcher is None and any(a.kind == "steer" for r in rules for a in r.actions):
            log.warning("alert rules use `steer` but no steering channel was given; those actions will fail")
        self.rules = list(rules)
        self.dispatcher = dispatcher or ActionDispatcher(steer=steer)
        self.run_lookup = run_lookup
        self.state = state
        self.max_runs = max_runs
        self.counters = Counters()
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        self._experiment_samples: dict[tuple[str, str], Samples] = {}
        self._scoped = any(rule.scope.level != "all" for rule in rules)
        # Per rule, what every epoch needs, prepared once: (index, rule, value reader, watches every run).
        self._plan = [(i, rule, rule.reader(), rule.scope.level == "all", rule.kind == "relative_to_median")
                      for i, rule in enumerate(self.rules)]
        self._lock = threading.Lock()

    def __call__(self, records: list[ProvRecord]) -> list[ProvRecord]:
        if not self.rules:
            return []
        with self._lock:
            for record in records:
                if isinstance(record, RunStartRecord | RunEndRecord) and (record.run_name or record.experiment):
                    run = self._run(record.run_id)
                    run.run_name = record.run_name or run.run_name
                    run.experiment = record.experiment or run.experiment
                    run.known = True
            alerts: list[ProvRecord] = []
            epochs = sorted((r for r in records if isinstance(r, EpochRecord)), key=lambda e: (e.run_id, e.epoch))
            touched: set[str] = set()
            for epoch in epochs:
                fired, evaluated = self._on_epoch(epoch)
                alerts.extend(fired)
                if evaluated:
                    touched.add(epoch.run_id)
            for record in records:
                if isinstance(record, RunEndRecord):
                    self._finish(record.run_id)
            if self.state is not None and touched:
                self.state.save_runs({run_id: self._memory(self._runs[run_id]) for run_id in touched
                                      if run_id in self._runs})
            return alerts

    def _memory(self, run: _Run) -> tuple[int, dict[str, RuleState]]:
        return run.last_epoch, {rule.name: state for rule, state in zip(self.rules, run.states, strict=False)
                                if state is not None}

    def close(self, timeout_s: float = 10.0) -> None:
        self.dispatcher.close(timeout_s)
        if self.state is not None:
            self.state.close()

    # --- internals --------------------------------------------------------------------------------
    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _Run()
            remembered = self.state.load_run(run_id) if self.state is not None else None
            if remembered is not None:  # seen before a restart: go on from where the last collector stopped
                run.last_epoch, states = remembered
                run.states = [states.get(rule.name) for rule in self.rules]
            while len(self._runs) > self.max_runs:
                self._runs.popitem(last=False)
        else:
            self._runs.move_to_end(run_id)
        return run

    def _identify(self, run_id: str, run: _Run) -> None:
        if run.known or not self._scoped or self.run_lookup is None:
            return
        run.known = True  # ask once; a later run-start record still fills it in
        try:
            found = self.run_lookup(run_id)
        except Exception:  # noqa: BLE001 - a store hiccup costs scoped rules one run, not the pipeline
            log.warning("alert rules: cannot look up run %s; scoped rules skip it", run_id, exc_info=True)
            return
        if found:
            run.run_name, run.experiment = found

    def _on_epoch(self, epoch: EpochRecord) -> tuple[list[AlertRecord], bool]:
        """(alerts of this epoch, whether it was evaluated now rather than replayed)."""
        run = self._run(epoch.run_id)
        if epoch.epoch <= run.last_epoch:
            self.counters.add("epochs.replayed")
            if epoch.epoch in run.fired or self.state is None:
                return list(run.fired.get(epoch.epoch, ())), False
            return self.state.fired_at(epoch.run_id, epoch.epoch), False
        run.last_epoch = epoch.epoch
        self._identify(epoch.run_id, run)
        self.counters.add("epochs.evaluated")
        fired: list[AlertRecord] = []
        if not run.states:
            run.states = [None] * len(self.rules)
        number = epoch.epoch
        for index, rule, read, every_run, uses_median in self._plan:
            if not every_run and not rule.scope.matches(epoch.run_id, run.run_name, run.experiment):
                continue
            state = run.states[index]
            if state is None:
                state = run.states[index] = RuleState()
            value = read(epoch)
            holds, bound = evaluate(rule, state, number, value, self._samples(rule, run) if uses_median else None)
            if not holds and state.streak_start is None and not state.firing:
                continue  # nothing to update: the common case, kept cheap
            if step(rule, state, number, holds):
                fired.append(self._fire(rule, state, epoch, run, value, bound))
        if fired:
            run.fired[epoch.epoch] = fired
            while len(run.fired) > MAX_FIRED_PER_RUN:
                run.fired.popitem(last=False)
        return fired, True

    def _samples(self, rule: Rule, run: _Run) -> Samples:
        if rule.baseline == "experiment":
            key = (rule.name, run.experiment)
            samples = self._experiment_samples.get(key)
            if samples is None:
                samples = self._experiment_samples[key] = Samples(rule.window)
            return samples
        samples = run.samples.get(rule.name)
        if samples is None:
            samples = run.samples[rule.name] = Samples(rule.window)
        return samples

    def _fire(self, rule: Rule, state: RuleState, epoch: EpochRecord, run: _Run, value: float,
              bound: float) -> AlertRecord:
        identifier = alert_id(rule.name, epoch.run_id, epoch.epoch)
        description = _describe(rule, value, bound, state, epoch)
        context: dict[str, object] = {
            "alert_id": identifier, "rule": rule.name, "run_id": epoch.run_id,
            "run_name": run.run_name or epoch.run_id, "experiment": run.experiment, "epoch": epoch.epoch,
            "metric": rule.metric, "value": value, "threshold": bound, "at": epoch.ended_at,
            "message": f"run {run.run_name or epoch.run_id} epoch {epoch.epoch}: {description}",
        }
        if rule.message:
            context["message"] = rule.message.format_map(context)
        record = AlertRecord(
            alert_id=identifier, rule=rule.name, run_id=epoch.run_id, epoch=epoch.epoch, at=epoch.ended_at,
            metric=rule.metric, value=value, threshold=bound, message=str(context["message"]),
            actions=",".join(spec.kind for spec in rule.actions),
        )
        if self.state is not None and not self.state.claim(record):
            self.counters.add("alerts.already_notified")  # fired before a restart: the record, not the actions
            return record
        started = self.dispatcher.dispatch(rule.actions, context)
        self.counters.add("alerts.fired")
        return dataclasses.replace(record, actions=",".join(started))

    def _finish(self, run_id: str) -> None:
        """A run ended: drop what only live evaluation needs; keep what answers replays."""
        run = self._runs.get(run_id)
        if run is not None:
            run.states.clear()
            run.samples.clear()
