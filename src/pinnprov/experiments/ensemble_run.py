"""`pinnprov train --ensemble N`: the same configuration from N seeds, through the sweep machinery, one store.

Why through the sweep: each member is then an ordinary `pinnprov train` process (one TensorFlow thread, its own
crash domain, captured exactly as a single run would be) and N members spread over the cores as a sweep's
configurations do. The members are seeds seed, seed+1, ..., seed+N-1 of one experiment; each writes its folder
under DIR/<member run name>. When they have ended, the driver combines their grids (experiments/ensemble_outputs.py)
into DIR and records the ensemble in the store (pinnprov/experiments/ensemble_record.py). The cost is N runs, `parallel`
at a time.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pinnprov.experiments.grid import GridPoint
from pinnprov.experiments.sweep import SweepSpec

# train flags the ensemble sets per member or itself (the rest are passed to every member unchanged)
DRIVER_FLAGS = ("seed", "experiment", "run_name", "out", "store", "otlp_endpoint", "threads", "no_progress",
                "with_baseline", "no_capture")


@dataclass(frozen=True)
class EnsembleSpec(SweepSpec):
    """A sweep over seeds only, whose members are named <ensemble>-seed<k>."""

    ensemble_name: str = ""

    def run_name(self, point: GridPoint) -> str:
        return f"{self.ensemble_name}-seed{point.as_dict()['seed']}"


def check_ensemble_args(args: argparse.Namespace) -> None:
    """Refuse what an ensemble cannot honour, before anything starts."""
    if args.ensemble < 1:
        raise ValueError(f"--ensemble: must be at least 1 (1 is a single run), got {args.ensemble}")
    if args.ensemble == 1:
        return
    if args.no_capture:
        raise ValueError("--ensemble: needs provenance capture (the members and the ensemble are recorded in the "
                         "store); drop --no-capture")
    if args.threads is not None:
        raise ValueError("--threads: not with --ensemble (every member runs on one TensorFlow thread)")


def member_args(args: argparse.Namespace) -> list[str]:
    """Train's flags as given, for every member (the driver's own flags left out)."""
    from pinnprov.experiments.training import add_train_arguments

    parser = argparse.ArgumentParser(add_help=False)
    add_train_arguments(parser)
    command: list[str] = []
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest in DRIVER_FLAGS or value is None:
            continue
        flag = next(option for option in action.option_strings if option.startswith("--"))
        if isinstance(action, argparse.BooleanOptionalAction):
            command.append(flag if value else f"--no-{flag[2:]}")
        elif action.nargs == 0:
            if value:
                command.append(flag)
        else:
            command += [flag, str(value)]
    return command


def run_ensemble(args: argparse.Namespace, config: Any, data: Any) -> int:
    """Train the members, combine them, record the ensemble; 0 when every member and the ensemble succeeded."""
    from pinnprov.core.settings import resolve_store_url
    from pinnprov.experiments.ensemble_outputs import EnsembleError, combine, member_from_folder, write_outputs
    from pinnprov.experiments.ensemble_record import EnsembleRecord, ensemble_hyperparameters
    from pinnprov.experiments.storeview import StoreView
    from pinnprov.experiments.sweep import Sweep, default_parallel, new_name_tag
    from pinnprov.experiments.training import run_baseline

    size = args.ensemble
    store = resolve_store_url(args.store)
    experiment = _experiment(config)
    tag = new_name_tag()
    name = args.run_name or f"{experiment}-{tag}"
    _refuse_taken_name(StoreView(store), name)
    out = args.out or Path("runs") / name
    seeds = [config.seed + k for k in range(size)]
    fixed = tuple(member_args(args))
    spec = EnsembleSpec(
        experiment=experiment, points=[GridPoint((("seed", str(seed)),), fixed) for seed in seeds], store=store,
        out_dir=out, parallel=default_parallel(size), otlp_endpoint=args.otlp_endpoint, name_tag=tag,
        ensemble_name=name,
    )
    record = EnsembleRecord(store, name, experiment, ensemble_hyperparameters(config.hyperparameters(), seeds),
                            data.identity())
    record.start()
    print(f"ensemble {name} ({record.run_id}): {size} members (seeds {seeds[0]}..{seeds[-1]}), {spec.parallel} at a "
          f"time, experiment {experiment}, store {store}, out {out}", flush=True)
    sweep = Sweep(spec, StoreView(store), echo=lambda line: print(line, flush=True))
    try:
        runs = sweep.run()
    except BaseException as error:  # interrupted (or the driver broke): the store says so, members linked
        record.add_members({run.run_id: seed for run, seed in zip(sweep.runs, seeds, strict=True) if run.run_id})
        interrupted = isinstance(error, KeyboardInterrupt)
        record.end("stopped" if interrupted else "failed", {},
                   "interrupted before every member ended" if interrupted else f"{type(error).__name__}: {error}")
        raise
    members = [member_from_folder(run.run_name, seed, run.status, out / run.run_name, run.run_id, run.error)
               for run, seed in zip(runs, seeds, strict=True)]
    record.add_members({member.run_id: member.seed for member in members if member.run_id})
    try:
        result = combine(members, data, run_baseline(data) if args.with_baseline else None)
        identity = {"ensemble_run_id": record.run_id, "ensemble_name": name, "experiment": experiment}
        written = write_outputs(out, result, data, identity)
    except (EnsembleError, OSError, ValueError) as error:
        record.end("failed", {}, str(error))
        print(f"pinnprov train: error: ensemble {name}: {error}", file=sys.stderr)
        return 1
    record.end("completed", result.summary())
    _print_result(name, result, written)
    failed = [member for member in members if not member.usable]
    for member in failed:
        print(f"{member.run_name}: {member.status}: {member.error}", file=sys.stderr)
    return 1 if failed else 0


def _experiment(config: Any) -> str:
    """The configured experiment, else one of the ensemble's own (not every ensemble in "default")."""
    from pinnprov.pinn.config import TrainConfig

    if config.experiment != TrainConfig().experiment:
        return str(config.experiment)
    return time.strftime("ensemble-%Y%m%d-%H%M%S")


def _refuse_taken_name(view: Any, name: str) -> None:
    try:
        taken = view.find_run(name) is not None
    except FileNotFoundError:  # a new store
        return
    if taken:
        raise ValueError(f"--run-name: the store already has a run named {name!r}")


def _print_result(name: str, result: Any, written: list[Path]) -> None:
    lines = [f"ensemble {name}: {len(result.used)} of {len(result.members)} members combined"]
    if result.r2 is not None:
        scores = ", ".join(f"{m.r2:.3f}" for m in result.used if m.r2 is not None)
        lines.append(f"velocity R2 of the mean {result.r2:.3f} (members {scores}), RMSE {result.rmse_m_s:.1f} m/s")
    spread = result.summary()
    if "ensemble.std_mean_m_s" in spread:
        lines.append(f"std {spread['ensemble.std_mean_m_s']:.1f} m/s on average, at most "
                     f"{spread['ensemble.std_max_m_s']:.1f} m/s")
    if result.skill is not None:
        lines.append(f"std vs actual error: Spearman {result.skill:.3f} (1: the std ranks the cells by their error, "
                     "0: no relation)")
    lines.append(f"wrote {', '.join(str(path) for path in written)}")
    print("\n".join(lines))
