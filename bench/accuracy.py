"""Accuracy of the PINN (the defaults of `pinnprov train`) against PyGIMLi: the benchmark and the model suite.

Default: the paper's crosshole benchmark, one JSON line per method and seed, e.g.
{"bench": "accuracy", "case": "benchmark", "method": "pinn", "seed": 1234, "r2": 0.66, "rmse_m_s": 310.0, ...}
With --suite: every case of pinnprov/pinn/model_suite.py (or one split, --split test), one line per case x seed x method
(R^2, RMSE, wall s, epochs, stop reason), then per split a summary line: median R^2 of the PINN and of PyGIMLi,
the PINN's win rate over runs and over cases (mean of its seeds against PyGIMLi), the ensemble of the seeds
(R^2 of the mean model, Spearman rank correlation of the per-cell std with the actual error).

No noise level is given to the PINN (like a user who has none): it stops on the default rule (pinn/stopping.py).
PyGIMLi gets the error model it needs (0.1 % + 10 µs). The exact model only scores. Runs are spread over
--parallel processes of one TensorFlow thread each (default: the cores).

Usage: python bench/accuracy.py [--suite [--split tuning|test]] [--methods pinn,pygimli] [--seeds 1234,1235,1236]
       [--set KEY=VALUE ...] [--parallel N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def load_data(case: str) -> Any:
    from pinnprov.pinn import model_suite
    from pinnprov.pinn.benchmark import crosshole_benchmark

    return crosshole_benchmark() if case == "benchmark" else model_suite.case(case).data()


def run_one(case: str, method: str, seed: int, overrides: dict[str, object], out: Path | None) -> dict[str, Any]:
    """One inversion in this process; returns its JSON line (without the bench/case/method keys)."""
    import numpy as np

    from pinnprov.pinn.trainer import configure_threads

    configure_threads(1)
    data = load_data(case)
    if method == "pygimli":
        from pinnprov.pinn.baseline_pygimli import invert

        result = invert(data)
        grid, line = result.velocity_grid, {"r2": result.r2, "rmse_m_s": result.rmse_m_s,
                                            "seconds": result.seconds, "chi2": result.chi2,
                                            "data_rms_s": result.data_rms_s}
    else:
        from pinnprov.pinn.config import TrainConfig
        from pinnprov.pinn.trainer import train

        config = TrainConfig.from_mapping({**overrides, "seed": seed, "threads": 1, "run_name": f"{case}-{seed}"})
        trained = train(config, data)
        m = trained.metrics
        grid, line = trained.velocity_grid, {"r2": m.get("r2"), "rmse_m_s": m.get("rmse_m_s"),
                                             "seconds": m["seconds"], "epochs": trained.epochs,
                                             "data_rms_s": m["data_rms_s"], "stop_reason": trained.stop_reason,
                                             "stopping_rule": trained.hyperparameters["stopping.rule"]}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / f"{case}-{method}-seed{seed}.npy", grid)
    return {**line, "seed": seed, "picks": data.picks, "noise_level_s": data.noise_rms_s}


def spawn(job: tuple[str, str, int], overrides: list[str], out: Path | None) -> dict[str, Any]:
    case, method, seed = job
    command = [sys.executable, __file__, "--one", f"{case}:{method}:{seed}"]
    command += [arg for item in overrides for arg in ("--set", item)]
    if out is not None:
        command += ["--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"bench": "accuracy", "case": case, "method": method, "seed": seed, "error": error}
    line: dict[str, Any] = json.loads(lines[-1])
    return line


def summarise(split: str, lines: list[dict[str, Any]], out: Path | None) -> dict[str, Any]:
    ok = [line for line in lines if line.get("r2") is not None]
    pinn = [line for line in ok if line["method"] == "pinn"]
    baseline = {line["case"]: line["r2"] for line in ok if line["method"] == "pygimli"}
    cases = sorted({line["case"] for line in pinn})
    per_case = {case: statistics.mean(line["r2"] for line in pinn if line["case"] == case) for case in cases}
    summary: dict[str, Any] = {"bench": "accuracy_summary", "split": split, "runs": len(pinn), "cases": len(cases),
                               "pinn_median_r2": round(statistics.median(line["r2"] for line in pinn), 4)
                               if pinn else None,
                               "pygimli_median_r2": round(statistics.median(baseline.values()), 4)
                               if baseline else None,
                               "pinn_seconds_max": round(max(line["seconds"] for line in pinn), 1) if pinn else None}
    compared = [line for line in pinn if line["case"] in baseline]
    if compared:
        summary["win_rate_runs"] = round(sum(line["r2"] > baseline[line["case"]] for line in compared)
                                         / len(compared), 3)
        summary["cases_won"] = sum(per_case[case] > baseline[case] for case in cases if case in baseline)
        summary["margin_median"] = round(summary["pinn_median_r2"] - summary["pygimli_median_r2"], 4)
    if out is not None:
        summary["ensembles"] = ensemble_lines(pinn, out)
    return summary


def ensemble_lines(pinn: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """Per case with >= 2 seeds: R^2 of the seeds' mean model and how well their std ranks the actual error."""
    import numpy as np

    try:
        from pinnprov.experiments.ensemble import ensemble_stats, uncertainty_skill
    except ImportError:  # the ensemble module is optional for this benchmark
        return []
    from pinnprov.pinn.metrics import r2
    from pinnprov.pinn.scoring import grid_for, true_model

    lines = []
    for case in sorted({line["case"] for line in pinn}):
        seeds = [line["seed"] for line in pinn if line["case"] == case]
        files = [out / f"{case}-pinn-seed{seed}.npy" for seed in seeds]
        if len(files) < 2 or not all(f.exists() for f in files):
            continue
        data = load_data(case)
        exact = true_model(data)
        if exact is None:
            continue
        truth = exact(*grid_for(data))
        mean, std = ensemble_stats([np.load(f) for f in files])
        lines.append({"case": case, "members": len(files), "mean_r2": round(r2(mean, truth), 4),
                      "std_median_m_s": round(float(np.median(std)), 1),
                      "std_error_spearman": round(uncertainty_skill(std, np.abs(mean - truth)), 3)})
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", action="store_true", help="the model suite instead of the benchmark")
    parser.add_argument("--split", default="", help="tuning or test (default: both)")
    parser.add_argument("--cases", default="", help="comma-separated case names (overrides --suite/--split)")
    parser.add_argument("--methods", default="pinn,pygimli")
    parser.add_argument("--seeds", default="1234", help="comma-separated PINN seeds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig override")
    parser.add_argument("--parallel", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--out", type=Path, help="save velocity grids here (needed for the ensemble lines)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # CASE:METHOD:SEED, run in this process
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    if args.one:
        case, method, seed = args.one.split(":")
        line = {"bench": "accuracy", "case": case, "method": method,
                **run_one(case, method, int(seed), overrides, args.out)}
        line["load_avg_1m"] = round(os.getloadavg()[0], 2)
        print(json.dumps(line), flush=True)
        return 0

    from pinnprov.pinn import model_suite

    methods = [m for m in args.methods.split(",") if m]
    for method in methods:
        if method not in ("pinn", "pygimli"):
            parser.error(f"unknown method {method!r} (choose pinn, pygimli)")
    if args.cases:
        groups = {"cases": [name for name in args.cases.split(",") if name]}
    elif args.suite:
        splits = [args.split] if args.split else list(model_suite.SPLITS)
        groups = {split: [c.name for c in model_suite.cases(split)] for split in splits}
    else:
        groups = {"benchmark": ["benchmark"]}
    seeds = [int(s) for s in args.seeds.split(",")]
    for split, names in groups.items():
        jobs = [(name, "pygimli", 0) for name in names if "pygimli" in methods]
        jobs += [(name, "pinn", seed) for name in names for seed in seeds if "pinn" in methods]
        lines: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
            for line in pool.map(lambda job: spawn(job, args.set, args.out), jobs):
                line["split"] = split
                print(json.dumps(line), flush=True)
                lines.append(line)
        if len(names) > 1 or len(seeds) > 1:
            print(json.dumps(summarise(split, lines, args.out)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
