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

from experiments import report_html as html
from experiments.compare import loss_curves, loss_figure, table2, write_csv
from experiments.paper import FULL_ACTIVATIONS, OPTIMIZERS, PaperOutcome, full_epochs
from experiments.storeview import StoreView, Table

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
    from pinn.figures import comparison_figure

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


def build_report(outcome: PaperOutcome, command_line: str) -> Path:
    plan = outcome.plan
    view = StoreView(plan.store)
    tables_dir, figures_dir = plan.out / "tables", plan.out / "figures"
    sections: list[html.Section] = []
    summary: dict[str, Any] = {"experiment": plan.experiment, "store": plan.store, "quick": plan.quick,
                               "epochs": plan.epochs, "wall_s": outcome.wall_s, "tables": {}, "figures": {}}

    def table(name: str, caption: str, query: Table, command: list[str]) -> html.TableBlock:
        """Write the CSV and remember the `pinnprov query` arguments that reproduce it."""
        csv_path = write_csv(tables_dir / f"{name}.csv", query)
        summary["tables"][name] = {"csv": str(csv_path.relative_to(plan.out)), "rows": len(query.rows),
                                   "query": command}
        return html.TableBlock(caption, query, str(csv_path.relative_to(plan.out)),
                               "pinnprov query " + " ".join(command))

    grid = f"{', '.join(plan.activations)} x {', '.join(plan.optimizers)}"
    sections.append(html.Section("The study", facts=[
        ("experiment", plan.experiment), ("store", plan.store), ("command", command_line),
        ("mode", "quick (reduced grid and epochs)" if plan.quick else "full"),
        ("grid", f"activations x optimizers = {grid} ({len(outcome.runs)} runs)"),
        ("epochs per run", str(plan.epochs)), ("processes at once", str(plan.parallel)),
        ("started", _stamp(outcome.started_at)), ("wall time", f"{outcome.wall_s:.0f} s"),
        ("machine", f"{socket.gethostname()}, {os.cpu_count()} cores, {platform.platform()}"),
    ]))

    decision = outcome.decision
    steering = html.Section("Steering at runtime")
    if decision.command_id:
        outcome_row = next((r for r in outcome.runs if r.run_name == decision.run_name), None)
        steering.paragraphs.append(
            f"After the warm-up ({plan.warmup_epochs} epochs) the driver queried Table 2 and stopped "
            f"{decision.run_name} at epoch {decision.epoch} (latest L = {decision.loss:.4g}). Agent: "
            f"{decision.agent}. Reason: {decision.reason}. The run ended with status "
            f"{outcome_row.status if outcome_row else 'unknown'}.")
        steering.blocks.append(table("adaptations", f"Adaptations of {decision.run_name}",
                                     view.query("adaptations", run=decision.run_id),
                                     ["adaptations", "--run", decision.run_name]))
    else:
        steering.paragraphs.append(f"No run was steered: {decision.note}.")
    combined = _all_adaptations(view, outcome)
    csv_path = write_csv(tables_dir / "adaptations_all.csv", combined)
    summary["tables_per_run"] = {"adaptations_all": {"csv": str(csv_path.relative_to(plan.out)),
                                                     "rows": len(combined.rows), "query": "adaptations"}}
    steering.blocks.append(html.TableBlock("PROV Adaptations of every run (learning-rate schedule, optimizer "
                                           "switches, stops, commands) with their agents", combined,
                                           str(csv_path.relative_to(plan.out)),
                                           "pinnprov query adaptations --run RUN, for each run"))
    summary["steering"] = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                           for k, v in asdict(decision).items()}
    sections.append(steering)

    table1_run = _table1_run(outcome)
    if table1_run is not None:
        every = max(1, plan.epochs // TABLE1_ROWS)
        sections.append(html.Section("Table 1", blocks=[table(
            "table1", f"Table 1. Elapsed time and loss of each epoch ({table1_run}, every {every} epochs)",
            view.query("epochs", run=table1_run, every=every if every > 1 else None),
            ["epochs", "--run", table1_run, "--every", str(every)])]))
    sections.append(html.Section("Table 2", blocks=[table(
        "table2", "Table 2. Elapsed time and training loss in the latest epoch of each combination",
        table2(view, plan.experiment), ["latest", "--experiment", plan.experiment])]))
    sections.append(html.Section("Table 3", blocks=[table(
        "table3", "Table 3. Learning-rate schedule and the lowest learning rate reached",
        view.query("lr", experiment=plan.experiment), ["lr", "--experiment", plan.experiment])]))

    figure2, note2 = _figure2(outcome, figures_dir)
    section2 = html.Section("Figure 2", paragraphs=[note2])
    if figure2 is not None:
        section2.blocks.append(figure2)
        summary["figures"]["figure2"] = str(figure2.png.relative_to(plan.out))
    sections.append(section2)
    curves = loss_curves(view, plan.experiment)
    if curves:
        png = loss_figure(figures_dir / "figure3_loss.png", curves, f"Training loss, {plan.experiment}")
        summary["figures"]["figure3"] = str(png.relative_to(plan.out))
        sections.append(html.Section("Figure 3", paragraphs=["Total loss of every run against epoch, log scale, "
                                                             "read from the store (`pinnprov compare`)."],
                                     blocks=[html.FigureBlock("Figure 3. Training loss of all runs", png)]))

    facts, numbers = _estimate(outcome, view)
    summary["timing"] = numbers
    sections.append(html.Section("Run time", facts=facts, css_class="estimate"))
    outcomes = html.Section("Runs")
    outcomes.facts = [(run.run_name, f"{run.status}" + (f": {run.error}" if run.error else "") +
                       f" ({run.elapsed_s:.0f} s, log {run.log_path.relative_to(plan.out)})") for run in outcome.runs]
    sections.append(outcomes)
    summary["runs"] = {run.run_name: {"status": run.status, "error": run.error, "run_id": run.run_id}
                       for run in outcome.runs}
    (plan.out / "report.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return html.write_report(plan.out / "report.html", f"pinnprov paper: {plan.experiment}", sections)
