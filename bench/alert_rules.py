"""Cost of alert rules in the collector: microseconds per epoch to evaluate `--rules` rules (default 100).

The rules are a realistic mix (threshold with windows and streaks, no_improvement, relative_to_median over
the whole run and over a 500-epoch window, non_finite), all on every epoch of `--runs` runs of `--epochs`
epochs, handed to the engine in batches of `--batch` records as the pipeline does. Actions are off
(record only), so this is the evaluation cost itself; firings are counted. One JSON line.

Usage: python bench/alert_rules.py [--rules 100] [--epochs 20000] [--runs 2] [--batch 512]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pinnprov.collector.alerts import AlertEngine, load_rules  # noqa: E402
from pinnprov.store.records import EpochRecord, RunStartRecord  # noqa: E402

METRICS = ("loss", "loss_bc", "loss_residual", "loss_data", "elapsed_s", "learning_rate")


def rule_set(count: int) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for i in range(count):
        metric = METRICS[i % len(METRICS)]
        kind = ("threshold", "threshold", "no_improvement", "relative_to_median", "non_finite")[i % 5]
        rule: dict[str, Any] = {"name": f"r{i}", "kind": kind, "metric": metric, "actions": []}
        if kind == "threshold":
            rule.update(threshold=10.0 ** -(i % 4), after_epoch=100 * (i % 3), for_epochs=1 + i % 4)
        elif kind == "no_improvement":
            rule.update(epochs=500 + i, min_delta=0.001)
        elif kind == "relative_to_median":
            rule.update(factor=3.0, window=500 if i % 2 else 0, min_samples=10)
        rules.append(rule)
    return rules


def records(runs: int, epochs: int) -> list[list[Any]]:
    out = []
    for n in range(runs):
        run_id = uuid.uuid4().hex
        rows: list[Any] = [RunStartRecord(run_id=run_id, record_id="1" * 16, run_name=f"bench-{n}",
                                          experiment="bench", started_at=0.0, hyperparameters={})]
        for e in range(epochs):
            wobble = 1.0 + 0.3 * math.sin(e / 50.0)
            rows.append(EpochRecord(run_id=run_id, record_id=f"{e + 2:016x}", epoch=e, started_at=float(e),
                                    ended_at=e + 0.9, elapsed_s=0.5 * wobble * (4.0 if e % 997 == 0 else 1.0),
                                    loss=100.0 / (e + 1) * wobble, loss_bc=1e-6 * wobble, loss_residual=1e-3 * wobble,
                                    loss_data=5e-4 / (1 + e / 1000) * wobble, learning_rate=1e-3 * 0.99 ** (e / 1000)))
        out.append(rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    engine = AlertEngine(load_rules(rule_set(args.rules)))
    runs = records(args.runs, args.epochs)
    fired, started = 0, time.perf_counter()
    for rows in runs:
        for i in range(0, len(rows), args.batch):
            fired += len(engine(rows[i : i + args.batch]))
    seconds = time.perf_counter() - started
    epochs = args.runs * args.epochs
    engine.close()
    print(json.dumps({
        "bench": "alert_rules", "rules": args.rules, "epochs": epochs, "fired": fired,
        "us_per_epoch": round(seconds / epochs * 1e6, 1),
        "us_per_rule_evaluation": round(seconds / epochs / args.rules * 1e6, 3),
        "epochs_per_s": round(epochs / seconds),
    }), flush=True)


if __name__ == "__main__":
    main()
