"""Assemble the paper's report from the store and the runs' output folders: Tables 1-3, Figures 2-3, steering.

Tables are the named queries (`epochs`, `latest`, `lr`, `adaptations`) run against the store and written both as
CSV (byte-identical to `pinnprov query ... --format csv`) and into the HTML. Figure 2 shows the PINN run chosen by
the data alone (lowest final data RMS); the true model only scores it. The full study's run time is estimated from
this study's measured throughput and labelled as an estimate.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pinnprov.experiments import report_html as html
from pinnprov.experiments.compare import loss_curves, loss_figure, table2, write_csv
from pinnprov.experiments.paper import FULL_ACTIVATIONS, OPTIMIZERS, PaperOutcome, full_epochs
from pinnprov.experiments.poor_run_rule import SteeringDecision
from pinnprov.experiments.storeview import StoreView, Table

TABLE1_ROWS = 4  # the paper's Table 1 shows epochs 0, 10000, 20000, 30000


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(seconds))


def _result(out: Path) -> dict[str, Any] | None:
    path = out / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _table1_run(outcome: PaperOutcome) -> str | None:
    """The Adam + Tanh run (the paper's Table 1), else the first run that trained."""
    trained = [run for run in outcome.runs if run.status in ("completed", "stopped")]
    for run in trained:
        values = run.point.as_dict()
        if values.get("optimizer") == "adam" and values.get("activation") == "tanh":
            return run.run_name
    return trained[0].run_name if trained else None


def _figure2(outcome: PaperOutcome, figures: Path) -> tuple[html.FigureBlock | None, str]:
    from pinnprov.pinn.figures import comparison_figure

    candidates = []
    for run in outcome.runs:
        result = _result(outcome.plan.out / run.run_name)
        if run.status in ("completed", "stopped") and result and "data_rms_s" in result.get("metrics", {}):
            candidates.append((result["metrics"]["data_rms_s"], run.run_name, result))
    if not candidates:
        return None, "no PINN run finished with a result: no Figure 2"
    data_rms, name, result = min(candidates)
    run_out = outcome.plan.out / name
    panels: list[tuple[str, Any, float | None]] = []
    if (run_out / "velocity_true.npy").is_file():  # benchmark data only: user picks have no true model
        panels.append(("True model", np.load(run_out / "velocity_true.npy"), None))
    note = ""
    if outcome.baseline_dir is not None:
        baseline = _result(outcome.baseline_dir) or {}
        panels.append(("PyGIMLi", np.load(outcome.baseline_dir / "velocity_pygimli.npy"), baseline.get("r2")))
    else:
        note = f"PyGIMLi baseline failed ({outcome.baseline_error}); its panel is missing. "
    values = next(run.point.as_dict() for run in outcome.runs if run.run_name == name)
    title = " + ".join(values.get(key, "?") for key in ("optimizer", "activation"))
    panels.append((f"PINN ({title})", np.load(run_out / "velocity_pinn.npy"), result["metrics"].get("r2")))
    png = comparison_figure(figures / "figure2_models.png", panels)
    note += (f"PINN panel: run {name}, chosen by the data alone (lowest final data RMS, {data_rms * 1e3:.4f} ms, "
             f"among the {len(candidates)} runs that finished); R² scores each model against the true one.")
    if outcome.plan.quick:
        note += (f" Quick mode stops every run at {outcome.plan.epochs} epochs, before the discrepancy principle "
                 "would (about 21,000 epochs with the defaults), so this panel understates the method's accuracy; "
                 "the full study or `pinnprov train` shows the converged model.")
    return html.FigureBlock("Figure 2. True, PyGIMLi and PINN velocity models with R²", png), note


def _estimate(outcome: PaperOutcome, view: StoreView) -> tuple[list[tuple[str, str]], dict[str, float]]:
    """Measured throughput of this study and the full study's run time extrapolated from it."""
    runs = {row["run_name"]: row for row in view.runs(outcome.plan.experiment)}
    rates, overheads = [], []
    for run in outcome.runs:
        row = runs.get(run.run_name)
        if not row or row.get("last_epoch") is None or not row.get("ended_at") or not row.get("started_at"):
            continue
        training = float(row["ended_at"]) - float(row["started_at"])
        if training > 0:
            rates.append((int(row["last_epoch"]) + 1) / training)
            overheads.append(max(0.0, run.elapsed_s - training))
    if not rates:
        return [("estimate", "not available: no run stored its timing")], {}
    rate, overhead = statistics.median(rates), statistics.median(overheads)
    configs = len(FULL_ACTIVATIONS) * len(OPTIMIZERS)
    waves = math.ceil(configs / outcome.plan.parallel)
    epochs = full_epochs()
    estimate = waves * (epochs / rate + overhead)
    facts = [
        ("measured throughput", f"{rate:.1f} epochs/s per process (median of {len(rates)} runs, "
                                f"{outcome.plan.parallel} processes at once)"),
        ("measured start-up per process", f"{overhead:.1f} s (TensorFlow import, data, tracing, scoring)"),
        ("ESTIMATE for the full study", f"{estimate / 60:.0f} min = {waves} waves x ({epochs} epochs / {rate:.1f} "
                                        f"epochs/s + {overhead:.0f} s), {configs} configurations, "
                                        f"{outcome.plan.parallel} at a time; an upper bound when the data-only "
                                        "stopping rule ends runs early; the PyGIMLi baseline runs alongside"),
    ]
    if outcome.plan.train_args or outcome.plan.extra_axes:
        overrides = " ".join([*outcome.plan.train_args, *(f"--{k} {v}" for k, v in outcome.plan.extra_axes.items())])
        facts.append(("note", f"these runs used `{overrides}`: the estimate holds for a full study with the same "
                              "settings (other network sizes change the cost per epoch)"))
    return facts, {"epochs_per_s": rate, "startup_s": overhead, "full_study_estimate_s": estimate}


def _all_adaptations(view: StoreView, outcome: PaperOutcome) -> Table:
    """Every run's adaptations (schedule steps, optimizer switches, stops, commands): the `adaptations` query
    of each run, one after the other, with the run's name in front."""
    columns: list[str] = []
    rows: list[tuple[Any, ...]] = []
    for run in outcome.runs:
        if not run.run_id:
            continue
        result = view.query("adaptations", run=run.run_id)
        columns = ["run_name", *result.columns]
        rows += [(run.run_name, *row) for row in result.rows]
    return Table("adaptations_all", columns or ["run_name"], rows)


class _Report:
    """The report being assembled: its sections, and report.json's summary of what each section used."""

    def __init__(self, outcome: PaperOutcome) -> None:
        self.outcome = outcome
        self.plan = outcome.plan
        self.view = StoreView(self.plan.store)
        self.tables_dir, self.figures_dir = self.plan.out / "tables", self.plan.out / "figures"
        self.sections: list[html.Section] = []
        self.summary: dict[str, Any] = {
            "experiment": self.plan.experiment, "store": self.plan.store, "quick": self.plan.quick,
            "epochs": self.plan.epochs, "wall_s": outcome.wall_s, "tables": {}, "figures": {},
        }

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.plan.out))

    def table(self, name: str, caption: str, query: Table, command: list[str]) -> html.TableBlock:
        """Write the CSV and remember the `pinnprov query` arguments that reproduce it."""
        csv_path = write_csv(self.tables_dir / f"{name}.csv", query)
        self.summary["tables"][name] = {"csv": self.relative(csv_path), "rows": len(query.rows), "query": command}
        return html.TableBlock(caption, query, self.relative(csv_path), "pinnprov query " + " ".join(command))

    def study(self, command_line: str) -> None:
        plan, outcome = self.plan, self.outcome
        grid = f"{', '.join(plan.activations)} x {', '.join(plan.optimizers)}"
        self.sections.append(html.Section("The study", facts=[
            ("experiment", plan.experiment), ("store", plan.store), ("command", command_line),
            ("mode", "quick (reduced grid and epochs)" if plan.quick else "full"),
            ("grid", f"activations x optimizers = {grid} ({len(outcome.runs)} runs)"),
            ("epochs per run", str(plan.epochs)), ("processes at once", str(plan.parallel)),
            ("started", _stamp(outcome.started_at)), ("wall time", f"{outcome.wall_s:.0f} s"),
            ("machine", f"{socket.gethostname()}, {os.cpu_count()} cores, {platform.platform()}"),
        ]))

    def steering(self) -> None:
        outcome = self.outcome
        decision = outcome.decision
        section = html.Section("Steering at runtime")
        section.paragraphs.append(
            f"Standing rule over the experiment, applied to every run of the steered optimizer as it reaches the "
            f"warm-up: stop it when its {outcome.rule}.")
        for stop in outcome.decisions:
            outcome_row = next((r for r in outcome.runs if r.run_name == stop.run_name), None)
            section.paragraphs.append(
                f"Stopped {stop.run_name} at epoch {stop.epoch} (L = {stop.loss:.4g} at the warm-up). Agent: "
                f"{stop.agent}. Reason: {stop.reason}. The run ended with status "
                f"{outcome_row.status if outcome_row else 'unknown'}.")
        for name, verdict in sorted(outcome.judged.items()):
            if verdict != "stopped":
                section.paragraphs.append(f"{name}: {verdict}.")
        if decision.command_id:
            section.blocks.append(self.table("adaptations", f"Adaptations of {decision.run_name}",
                                             self.view.query("adaptations", run=decision.run_id),
                                             ["adaptations", "--run", decision.run_name]))
        else:
            section.paragraphs.append(f"No run was steered: {decision.note}.")
        combined = _all_adaptations(self.view, outcome)
        csv_path = write_csv(self.tables_dir / "adaptations_all.csv", combined)
        self.summary["tables_per_run"] = {"adaptations_all": {"csv": self.relative(csv_path),
                                                              "rows": len(combined.rows), "query": "adaptations"}}
        section.blocks.append(html.TableBlock("PROV Adaptations of every run (learning-rate schedule, optimizer "
                                              "switches, stops, commands) with their agents", combined,
                                              self.relative(csv_path),
                                              "pinnprov query adaptations --run RUN, for each run"))
        self.summary["steering"] = _plain(decision)  # the first stop (or why none)
        self.summary["steering_rule"] = {"rule": outcome.rule, "stopped": [_plain(s) for s in outcome.decisions],
                                         "judged": dict(outcome.judged)}
        self.sections.append(section)

    def tables(self) -> None:
        plan, view = self.plan, self.view
        table1_run = _table1_run(self.outcome)
        if table1_run is not None:
            every = max(1, plan.epochs // TABLE1_ROWS)
            self.sections.append(html.Section("Table 1", blocks=[self.table(
                "table1", f"Table 1. Elapsed time and loss of each epoch ({table1_run}, every {every} epochs)",
                view.query("epochs", run=table1_run, every=every if every > 1 else None),
                ["epochs", "--run", table1_run, "--every", str(every)])]))
        self.sections.append(html.Section("Table 2", blocks=[self.table(
            "table2", "Table 2. Elapsed time and training loss in the latest epoch of each combination",
            table2(view, plan.experiment), ["latest", "--experiment", plan.experiment])]))
        self.sections.append(html.Section("Table 3", blocks=[self.table(
            "table3", "Table 3. Learning-rate schedule and the lowest learning rate reached",
            view.query("lr", experiment=plan.experiment), ["lr", "--experiment", plan.experiment])]))

    def figures(self) -> None:
        figure2, note2 = _figure2(self.outcome, self.figures_dir)
        section2 = html.Section("Figure 2", paragraphs=[note2])
        if figure2 is not None:
            section2.blocks.append(figure2)
            self.summary["figures"]["figure2"] = self.relative(figure2.png)
        self.sections.append(section2)
        curves = loss_curves(self.view, self.plan.experiment)
        if curves:
            png = loss_figure(self.figures_dir / "figure3_loss.png", curves, f"Training loss, {self.plan.experiment}")
            self.summary["figures"]["figure3"] = self.relative(png)
            self.sections.append(html.Section(
                "Figure 3", paragraphs=["Total loss of every run against epoch, log scale, read from the store "
                                        "(`pinnprov compare`)."],
                blocks=[html.FigureBlock("Figure 3. Training loss of all runs", png)]))

    def timing_and_runs(self) -> None:
        facts, numbers = _estimate(self.outcome, self.view)
        self.summary["timing"] = numbers
        self.sections.append(html.Section("Run time", facts=facts, css_class="estimate"))
        runs = self.outcome.runs
        self.sections.append(html.Section("Runs", facts=[
            (run.run_name, f"{run.status}" + (f": {run.error}" if run.error else "")
             + f" ({run.elapsed_s:.0f} s, log {self.relative(run.log_path)})") for run in runs]))
        self.summary["runs"] = {run.run_name: {"status": run.status, "error": run.error, "run_id": run.run_id}
                                for run in runs}


def _plain(stop: SteeringDecision) -> dict[str, object]:
    """A steering decision as JSON (non-finite numbers as null)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(stop).items()}


def build_report(outcome: PaperOutcome, command_line: str) -> Path:
    """Write report.html and report.json (with the tables as CSV and the figures as PNG) into the study folder."""
    report = _Report(outcome)
    report.study(command_line)
    report.steering()
    report.tables()
    report.figures()
    report.timing_and_runs()
    plan = outcome.plan
    (plan.out / "report.json").write_text(json.dumps(report.summary, indent=2, default=str) + "\n", encoding="utf-8")
    return html.write_report(plan.out / "report.html", f"pinnprov paper: {plan.experiment}", report.sections)
