"""`pinnprov train --ensemble N`: N members through the sweep machinery into one store, then their mean and spread.

Why through the sweep: each member is then an ordinary `pinnprov train` process (one TensorFlow thread, its own
crash domain, captured exactly as a single run would be) and members spread over the cores as a sweep's
configurations do; each writes its folder under DIR/<member run name>. Two methods:
- rml (default): randomized maximum likelihood (pinnprov/pinn/rml_plan.py). First the ordinary run (member 0, with a
  final checkpoint); then members 1 .. N-1, `parallel` at a time, each fitting picks perturbed by the pick noise
  (stated, from repeated pairs, or the first run's converged misfit) under a perturbed prior, warm-started from the
  first run's checkpoint. Cost: one run plus N - 1 shorter ones.
- seeds: seeds seed .. seed+N-1 of the same problem, all at once (N runs); their spread is not an error bar.
When the members have ended, the driver combines their grids (experiments/ensemble_outputs.py) into DIR and records
the ensemble, its uncertainty grids and its members in the store (pinnprov/experiments/ensemble_record.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pinnprov.experiments.grid import GridPoint
from pinnprov.experiments.sweep import SweepSpec

# train flags the ensemble sets per member or itself (the rest are passed to every member unchanged)
DRIVER_FLAGS = ("seed", "experiment", "run_name", "out", "store", "otlp_endpoint", "threads", "no_progress",
                "with_baseline", "no_capture", "perturb_seed", "perturb_picks", "perturb_prior", "perturb_prior_length",
                "perturb_prior_weight", "warm_start")
# --perturb-* flags given with --ensemble set the plan's draws (flag -> RmlPlan field)
PLAN_FLAGS = {"perturb_prior": "prior", "perturb_prior_length": "prior_length", "perturb_prior_weight": "prior_weight"}


@dataclass(frozen=True)
class EnsembleSpec(SweepSpec):
    """A sweep over members, named <ensemble>-seed<k> (method seeds) or <ensemble>-m<k> (method rml)."""

    ensemble_name: str = ""

    def run_name(self, point: GridPoint) -> str:
        values = point.as_dict()
        if "member" in values:
            return f"{self.ensemble_name}-m{values['member']}"
        return f"{self.ensemble_name}-seed{values['seed']}"


@dataclass(frozen=True)
class MemberPoint(GridPoint):
    """A grid point carrying the member's index for its name; `member` is not a train flag."""

    def train_args(self) -> list[str]:
        args = list(self.fixed_args)
        for flag, value in self.values:
            if flag != "member":
                args += [f"--{flag}", value]
        return args


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
    if getattr(args, "ensemble_method", "rml") == "seeds":
        given = [flag for flag in PLAN_FLAGS if getattr(args, flag, None) is not None]
        if given:
            raise ValueError(f"--{given[0].replace('_', '-')}: only with --ensemble-method rml")
    every = getattr(args, "checkpoint_every", None)
    if getattr(args, "ensemble_method", "rml") == "rml" and every is not None:
        from pinnprov.pinn.checkpoints import CheckpointPolicy

        if not CheckpointPolicy.parse(Path("."), every).enabled:
            raise ValueError(f"--checkpoint-every {every}: an RML ensemble's members start from the first run's "
                             "checkpoint")
    for flag in ("perturb_seed", "perturb_picks", "warm_start"):
        if getattr(args, flag, None) is not None:
            raise ValueError(f"--{flag.replace('_', '-')}: set per member by --ensemble, not by hand")


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
    from pinnprov.experiments.sweep import default_parallel, new_name_tag
    from pinnprov.experiments.training import run_baseline

    size = args.ensemble
    method = getattr(args, "ensemble_method", "rml")
    plan = _plan(args, size) if method == "rml" else None
    store = resolve_store_url(args.store)
    experiment = _experiment(config)
    tag = new_name_tag()
    name = args.run_name or f"{experiment}-{tag}"
    _refuse_taken_name(StoreView(store), name)
    out = args.out or Path("runs") / name
    seeds = [config.seed + k for k in range(size)]
    fixed = tuple(member_args(args))
    spec = EnsembleSpec(
        experiment=experiment, points=[], store=store, out_dir=out, parallel=default_parallel(size),
        otlp_endpoint=args.otlp_endpoint, name_tag=tag, ensemble_name=name,
    )
    inputs: dict[str, Any] = {**ensemble_hyperparameters(config.hyperparameters(), seeds), "ensemble.method": method}
    if plan is not None:
        inputs.update({f"ensemble.rml.{key}": value for key, value in dataclasses.asdict(plan).items()
                       if key != "members"})
    record = EnsembleRecord(store, name, experiment, inputs, data.identity())
    record.start()
    how = f"RML: the ordinary run, then {size - 1} perturbed members" if plan else f"seeds {seeds[0]}..{seeds[-1]}"
    print(f"ensemble {name} ({record.run_id}): {size} members ({how}), {spec.parallel} at a time, experiment "
          f"{experiment}, store {store}, out {out}", flush=True)
    runs: list[Any] = []
    noise: tuple[float, str] | None = None
    try:
        if plan is None:
            points = [GridPoint((("seed", str(seed)),), fixed) for seed in seeds]
            _sweep(spec, points, runs)
        else:
            first = _sweep(spec, [MemberPoint((("member", "0"), ("seed", str(config.seed))), fixed)], runs)
            pilot = member_from_folder(first[0].run_name, config.seed, first[0].status, out / first[0].run_name,
                                       first[0].run_id, first[0].error)
            if not pilot.usable:
                raise EnsembleError(f"the ordinary run {pilot.run_name} ended {pilot.status}: {pilot.error}")
            sigma, source = _picks_sigma(config, data, pilot.out)
            print(f"ensemble {name}: members perturb the picks by {sigma * 1e3:.4f} ms ({source})", flush=True)
            noise = (sigma, source)
            _sweep(spec, _member_points(plan, config, sigma, out / first[0].run_name / "checkpoints", fixed), runs)
    except EnsembleError as error:
        _link(record, runs, seeds)
        record.end("failed", {}, str(error))
        print(f"pinnprov train: error: ensemble {name}: {error}", file=sys.stderr)
        return 1
    except BaseException as error:  # interrupted (or the driver broke): the store says so, members linked
        _link(record, runs, seeds)
        interrupted = isinstance(error, KeyboardInterrupt)
        record.end("stopped" if interrupted else "failed", {},
                   "interrupted before every member ended" if interrupted else f"{type(error).__name__}: {error}")
        raise
    members = [member_from_folder(run.run_name, seed, run.status, out / run.run_name, run.run_id, run.error)
               for run, seed in zip(runs, seeds, strict=True)]
    record.add_members({member.run_id: member.seed for member in members if member.run_id})
    try:
        result = combine(members, data, run_baseline(data) if args.with_baseline else None, noise)
        identity = {"ensemble_run_id": record.run_id, "ensemble_name": name, "experiment": experiment,
                    "method": method, **({"plan": dataclasses.asdict(plan)} if plan else {})}
        written = write_outputs(out, result, data, identity)
        record.add_models(result.grid_x, result.grid_z, result.grids())
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


def _plan(args: argparse.Namespace, size: int) -> Any:
    from pinnprov.pinn.rml_plan import RmlPlan

    given = {field: getattr(args, flag) for flag, field in PLAN_FLAGS.items() if getattr(args, flag, None) is not None}
    return RmlPlan(members=size, **given)


def _sweep(spec: EnsembleSpec, points: list[GridPoint], runs: list[Any]) -> list[Any]:
    """Run `points` as one sweep and return its runs, appended to `runs` too (also the started ones when interrupted,
    so the ensemble still links them)."""
    from pinnprov.experiments.storeview import StoreView
    from pinnprov.experiments.sweep import Sweep

    sweep = Sweep(dataclasses.replace(spec, points=points, parallel=min(spec.parallel, len(points))),
                  StoreView(spec.store), echo=lambda line: print(line, flush=True))
    try:
        done = sweep.run()
    except BaseException:
        runs.extend(sweep.runs)
        raise
    runs.extend(done)
    return list(done)


def _member_points(plan: Any, config: Any, sigma: float, checkpoints: Path, fixed: tuple[str, ...]) -> list[GridPoint]:
    """Members 1 .. N-1 as train flags: every config value the plan changes, as its flag (training.FLAG_FIELDS), and
    the warm start."""
    from pinnprov.experiments.training import FLAG_FIELDS

    # the first run's config: the --perturb-* flags given with --ensemble went to the plan, not to that run
    defaults = type(config)()
    first = config.replace(**{key: getattr(defaults, key) for key in FLAG_FIELDS.values()
                              if key.startswith("perturb_")})
    points: list[GridPoint] = []
    for k in range(1, plan.members):
        member = plan.member_config(first, k, sigma)
        changed = tuple((flag.replace("_", "-"), _flag_value(getattr(member, key)))
                        for flag, key in FLAG_FIELDS.items() if getattr(member, key) != getattr(first, key))
        points.append(MemberPoint((("member", str(k)), *changed, ("warm-start", str(checkpoints))), fixed))
    return points


def _flag_value(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _picks_sigma(config: Any, data: Any, pilot_out: Path) -> tuple[float, str]:
    import json

    from pinnprov.pinn.rml_plan import picks_sigma

    try:
        metrics = json.loads((pilot_out / "result.json").read_text(encoding="utf-8")).get("metrics", {})
    except (OSError, ValueError):
        metrics = {}
    return picks_sigma(config, data, metrics)


def _link(record: Any, runs: list[Any], seeds: list[int]) -> None:
    record.add_members({run.run_id: seed for run, seed in zip(runs, seeds, strict=False) if run.run_id})


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
    if "ensemble.coverage90" in spread:
        lines.append(f"90 % interval covers {spread['ensemble.coverage90']:.0%} of the cells (exact model)")
    if "ensemble.std_mean_m_s" in spread:
        lines.append(f"std {spread['ensemble.std_mean_m_s']:.1f} m/s on average, at most "
                     f"{spread['ensemble.std_max_m_s']:.1f} m/s")
    if result.skill is not None:
        lines.append(f"std vs actual error: Spearman {result.skill:.3f} (1: the std ranks the cells by their error, "
                     "0: no relation)")
    lines.append(f"wrote {', '.join(str(path) for path in written)}")
    print("\n".join(lines))
