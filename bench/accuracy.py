"""Accuracy of the PINN (the defaults of `pinnprov train`) against PyGIMLi: the benchmark and the model suite.

Default: the paper's crosshole benchmark, one JSON line per method and seed, e.g.
{"bench": "accuracy", "case": "benchmark", "method": "pinn", "seed": 1234, "r2": 0.66, "rmse_m_s": 310.0, ...}
With --suite: every case of pinnprov/pinn/model_suite.py (or one split, --split test), one line per case x seed x method
(R^2, RMSE, wall s, epochs, stop reason), then per split a summary line: median R^2 of the PINN and of PyGIMLi,
the PINN's win rate over runs and over cases (mean of its seeds against PyGIMLi), the ensemble of the seeds
(R^2 of the mean model, Spearman rank correlation of the per-cell std with the actual error).

With --ensemble N (needs --out): per case and seed an RML ensemble (pinnprov/pinn/rml_plan.py): the seed's ordinary
run is member 0 (and the "single run" it is compared with), N - 1 perturbed members warm-start from its checkpoint.
A line per case: R^2 of the single run and of the mean model, coverage of the 90 % interval (as the members give it,
c = 1, and with the tuning-chosen inflation), Spearman of std with |error|, CPU of the ensemble in single runs.

No noise level is given to the PINN (like a user who has none): it stops on the default rule (pinn/stopping.py).
PyGIMLi gets the error model it needs (0.1 % + 10 µs). The exact model only scores. Runs are spread over
--parallel processes of one TensorFlow thread each (default: the cores).

Usage: python bench/accuracy.py [--suite [--split tuning|test]] [--methods pinn,pygimli] [--seeds 1234,1235,1236]
       [--set KEY=VALUE ...] [--parallel N] [--out DIR] [--ensemble N [--rml KEY=VALUE ...]]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
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


def run_one(case: str, method: str, seed: int, overrides: dict[str, object], out: Path | None,
            member: tuple[int, float, dict[str, object]] | None = None) -> dict[str, Any]:
    """One inversion in this process; returns its JSON line (without the bench/case/method keys).

    `member` = (k, pick sigma, plan overrides): RML member k, warm-started from the seed's run's checkpoint.
    """
    import numpy as np

    from pinnprov.pinn.trainer import configure_threads

    configure_threads(1)
    data = load_data(case)
    cpu_started = time.process_time()
    if method == "pygimli":
        from pinnprov.pinn.baseline_pygimli import invert

        result = invert(data)
        grid, line = result.velocity_grid, {"r2": result.r2, "rmse_m_s": result.rmse_m_s,
                                            "seconds": result.seconds, "chi2": result.chi2,
                                            "data_rms_s": result.data_rms_s}
    else:
        from pinnprov.pinn import checkpoints as ckpt
        from pinnprov.pinn.config import TrainConfig
        from pinnprov.pinn.trainer import train

        config = TrainConfig.from_mapping({**overrides, "seed": seed, "threads": 1, "run_name": f"{case}-{seed}"})
        folder = None if out is None else out / "checkpoints" / f"{case}-seed{seed}"
        if member is None:
            policy = None if folder is None else ckpt.CheckpointPolicy.parse(folder, "10m", keep=1)
            trained = train(config, data, checkpoints=policy)
        else:
            from pinnprov.pinn.rml_plan import RmlPlan

            k, sigma, plan_overrides = member
            assert folder is not None
            plan = RmlPlan(**{"members": k + 1, **plan_overrides})  # type: ignore[arg-type]
            config = plan.member_config(config, k, sigma)
            trained = train(config, data, warm_start=ckpt.load(folder))
        m = trained.metrics
        grid, line = trained.velocity_grid, {"r2": m.get("r2"), "rmse_m_s": m.get("rmse_m_s"),
                                             "seconds": m["seconds"], "epochs": trained.epochs,
                                             "data_rms_s": m["data_rms_s"], "stop_reason": trained.stop_reason,
                                             "stopping_rule": trained.hyperparameters["stopping.rule"],
                                             "noise_estimate_s": m.get("noise_estimate_s")}
    line["cpu_s"] = round(time.process_time() - cpu_started, 2)  # this process's CPU (all its threads)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / f"{case}-{method}-seed{seed}.npy", grid)
    return {**line, "seed": seed, "picks": data.picks, "noise_level_s": data.noise_rms_s}


def spawn(job: tuple[str, str, int], overrides: list[str], out: Path | None, rml: list[str] = (),
          sigma: float = 0.0) -> dict[str, Any]:
    case, method, seed = job
    command = [sys.executable, __file__, "--one", f"{case}:{method}:{seed}"]
    command += [arg for item in overrides for arg in ("--set", item)]
    if method.startswith("rml"):
        command += ["--sigma", repr(sigma)] + [arg for item in rml for arg in ("--rml", item)]
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
    parser.add_argument("--ensemble", type=int, default=0, metavar="N", help="RML ensembles of N per case and seed")
    parser.add_argument("--rml", action="append", default=[], metavar="KEY=VALUE", help="RmlPlan override")
    parser.add_argument("--inflation", type=float, help="interval inflation c (default: the module's)")
    parser.add_argument("--pilots", type=Path, metavar="JSONL",
                        help="reuse the ordinary runs of an earlier --ensemble output (same --out): members only")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # CASE:METHOD:SEED, run in this process
    parser.add_argument("--sigma", type=float, default=0.0, help=argparse.SUPPRESS)  # an RML member's pick noise
    args = parser.parse_args()
    overrides, plan_overrides = key_values(args.set), key_values(args.rml)
    if args.one:
        case, method, seed = args.one.split(":")
        member = (int(method[3:]), args.sigma, plan_overrides) if method.startswith("rml") else None
        line = {"bench": "accuracy", "case": case, "method": method,
                **run_one(case, method, int(seed), overrides, args.out, member)}
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
    if args.ensemble and args.out is None:
        parser.error("--ensemble needs --out (members warm-start from checkpoints written there)")
    if args.ensemble == 1 or args.ensemble < 0:
        parser.error("--ensemble: at least 2 members")
    for split, names in groups.items():
        jobs = [(name, "pygimli", 0) for name in names if "pygimli" in methods]
        jobs += [(name, "pinn", seed) for name in names for seed in seeds if "pinn" in methods or args.ensemble]
        lines: list[dict[str, Any]] = []
        if args.pilots:
            earlier = [json.loads(text) for text in args.pilots.read_text().splitlines() if text.startswith("{")]
            lines = [line for line in earlier if line.get("bench") == "accuracy" and line["method"] == "pinn"
                     and (line["case"], "pinn", line["seed"]) in jobs]
            jobs = [job for job in jobs if job[1] != "pinn"]
        with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
            for line in pool.map(lambda job: spawn(job, args.set, args.out), jobs):
                line["split"] = split
                print(json.dumps(line), flush=True)
                lines.append(line)
            if args.ensemble:
                members = member_jobs(lines, args.ensemble)
                for line in pool.map(lambda job: spawn(job[:3], args.set, args.out, args.rml, job[3]), members):
                    line["split"] = split
                    print(json.dumps(line), flush=True)
                    lines.append(line)
        if len(names) > 1 or len(seeds) > 1:
            print(json.dumps(summarise(split, lines, args.out)), flush=True)
        if args.ensemble:
            for line in rml_lines(lines, args.out, args.ensemble, args.inflation):
                print(json.dumps({"bench": "accuracy_ensemble", "split": split, **line}), flush=True)
    return 0


def key_values(items: list[str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            values[key] = json.loads(value)
        except json.JSONDecodeError:
            values[key] = value
    return values


def member_jobs(lines: list[dict[str, Any]], size: int) -> list[tuple[str, str, int, float]]:
    """(case, rml<k>, seed, pick sigma) of members 1 .. size-1 of every run that ended with a model."""
    from pinnprov.pinn.config import TrainConfig
    from pinnprov.pinn.rml_plan import picks_sigma

    jobs = []
    for line in lines:
        if line["method"] != "pinn" or line.get("r2") is None:
            continue
        metrics = {key: line[key] for key in ("noise_estimate_s", "data_rms_s") if line.get(key) is not None}
        sigma, _ = picks_sigma(TrainConfig(), load_data(line["case"]), metrics)
        jobs += [(line["case"], f"rml{k}", line["seed"], sigma) for k in range(1, size)]
    return jobs


def rml_lines(lines: list[dict[str, Any]], out: Path, size: int, inflation: float | None) -> list[dict[str, Any]]:
    """Per case and seed: the ensemble's scores against the single run's (member 0), from the saved grids."""
    import numpy as np

    from pinnprov.experiments import ensemble as ens
    from pinnprov.pinn.metrics import r2
    from pinnprov.pinn.scoring import grid_for, true_model

    c = ens.SPREAD_INFLATION if inflation is None else inflation
    result = []
    for pilot in (line for line in lines if line["method"] == "pinn" and line.get("r2") is not None):
        case, seed = pilot["case"], pilot["seed"]
        members = [line for line in lines if line["case"] == case and line["seed"] == seed
                   and line["method"].startswith("rml") and line.get("r2") is not None]
        files = [out / f"{case}-pinn-seed{seed}.npy"] + [out / f"{case}-{m['method']}-seed{seed}.npy" for m in members]
        data = load_data(case)
        truth = true_model(data)(*grid_for(data))
        mean, std = ens.ensemble_stats([np.load(f) for f in files])
        error = np.abs(mean - truth)
        raw, calibrated = (ens.coverage(*ens.interval(mean, std, len(files), inflation=f), truth) for f in (1.0, c))
        # CPU seconds where measured (contention from other jobs does not count), else wall seconds
        cost = "cpu_s" if "cpu_s" in pilot and all("cpu_s" in m for m in members) else "seconds"
        seconds = [pilot[cost]] + [m[cost] for m in members]
        result.append({
            "case": case, "seed": seed, "members": len(files), "single_r2": round(pilot["r2"], 4),
            "mean_r2": round(r2(mean, truth), 4), "member_r2_median": round(float(np.median(
                [m["r2"] for m in members])), 4) if members else None,
            "coverage90_raw": round(raw, 3), "coverage90": round(calibrated, 3), "inflation": c,
            "std_error_spearman": round(ens.uncertainty_skill(std, error), 3),
            "std_median_m_s": round(float(np.median(std)), 1), "error_median_m_s": round(float(np.median(error)), 1),
            "needed_inflation": round(needed_inflation(mean, std, truth, len(files)), 3),
            "cpu_single_runs": round(sum(seconds) / seconds[0], 2), "cost_measure": cost,
            # `pinnprov train --ensemble` on 2 cores: the ordinary run, then the members two at a time
            "wall_single_runs_2_cores": round((seconds[0] + math.ceil(len(members) / 2) * float(np.median(
                seconds[1:]))) / seconds[0], 2) if members else None,
            "member_epochs_median": float(np.median([m["epochs"] for m in members])) if members else None,
        })
    return result


def needed_inflation(mean: Any, std: Any, truth: Any, members: int) -> float:
    """The c at which the 90 % interval covers 90 % of the cells (what calibration on this case would choose)."""
    import numpy as np

    from pinnprov.experiments import ensemble as ens

    unit = ens.student_t_quantile(0.95, members - 1) * np.sqrt(1 + 1 / members)
    ratio = np.abs(truth - mean) / np.maximum(std * unit, 1e-12)
    return float(np.quantile(ratio[np.isfinite(ratio)], ens.INTERVAL_LEVEL))


if __name__ == "__main__":
    sys.exit(main())
