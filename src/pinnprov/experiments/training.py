"""One training run from the command line's point of view: its flags, its config and data, and its outputs.

`pinnprov train` is the only command that trains, and sweeps and the paper study pass train's own flags through
(experiments/train_flags.py), so the flag definitions, the flag -> TrainConfig mapping, the data loading and the
output writing live here, once, below the CLI. Settings come from flags, then a --config file (YAML or JSON,
keys of pinn.config.TrainConfig), then the tuned defaults. Capture and steering are wired by the CLI
(pinnprov/cli/commands/train.py) and handed in as observers and a command source.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import warnings
from pathlib import Path
from typing import Any

# flag name -> TrainConfig field, for flags that override config keys one to one
FLAG_FIELDS = {
    "activation": "activation", "optimizer": "optimizer", "epochs": "epochs", "lr": "lr_initial",
    "decay_rate": "lr_decay_rate", "decay_steps": "lr_decay_steps", "w_residual": "weight_residual",
    "w_boundary": "weight_boundary", "w_data": "weight_data", "seed": "seed", "experiment": "experiment",
    "run_name": "run_name", "threads": "threads", "lbfgs_steps": "lbfgs_steps", "noise_level": "noise_level_s",
    "collocation": "collocation_count", "jit": "jit_compile", "stopping": "stopping",
    "time_budget": "time_budget_s", "holdout_fraction": "holdout_fraction", "perturb_seed": "perturb_seed",
    "perturb_picks": "perturb_picks_s", "perturb_prior": "perturb_prior",
    "perturb_prior_length": "perturb_prior_length", "perturb_prior_weight": "perturb_prior_weight",
}
# keys a config file may hold besides TrainConfig fields
FILE_ONLY_KEYS = ("data", "domain")



def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag of `pinnprov train` (sweeps read them back to pass them through)."""
    model = parser.add_argument_group("model and optimisation (override --config)")
    model.add_argument("--config", type=Path, metavar="FILE", help="YAML or JSON file of TrainConfig keys")
    model.add_argument("--activation", help="tanh, sine, sigmoid, relu, swish, adaptive_tanh")
    model.add_argument("--optimizer", help="adam or rmsprop")
    model.add_argument("--epochs", type=int, help="optimiser steps (full batch) of the first phase")
    model.add_argument("--lr", "--learning-rate", dest="lr", type=float, help="initial learning rate")
    model.add_argument("--decay-rate", type=float, help="exponential decay rate per period")
    model.add_argument("--decay-steps", type=int, help="steps per decay period")
    model.add_argument("--w-residual", type=float, help="weight of the FEE residual loss L_R")
    model.add_argument("--w-boundary", type=float, help="weight of the boundary loss L_BC")
    model.add_argument("--w-data", type=float, help="weight of the data loss L_D")
    model.add_argument("--collocation", type=int, help="collocation points per step")
    model.add_argument("--lbfgs-steps", type=int, help="L-BFGS iterations after the first phase (default 0)")
    model.add_argument("--stopping", choices=("converged", "discrepancy", "holdout", "none"),
                       help="data-only stopping rule (default converged: needs no noise level)")
    model.add_argument("--noise-level", type=float, metavar="SECONDS",
                       help="RMS pick uncertainty sqrt(mean(sigma_i^2)) in s, for --stopping discrepancy")
    model.add_argument("--holdout-fraction", type=float, metavar="SHARE",
                       help="share of picks held out by --stopping holdout (default 0.1)")
    model.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop after this wall time")
    model.add_argument("--seed", type=int)
    model.add_argument("--threads", type=int, help="TensorFlow threads (1 is fastest for small nets)")
    model.add_argument("--jit", action=argparse.BooleanOptionalAction, default=None,
                       help="XLA-compile the train step (default on)")
    member = parser.add_argument_group("RML ensemble member (set per member by --ensemble; see pinn/perturbation.py)")
    member.add_argument("--perturb-seed", type=int, help="seed of this member's draws (default 0: unperturbed)")
    member.add_argument("--perturb-picks", type=float, metavar="SECONDS", help="std of the noise added to each pick")
    member.add_argument("--perturb-prior", type=float, metavar="SHARE",
                        help="std of the random field added to the prior's background (share of the velocity scale)")
    member.add_argument("--perturb-prior-length", type=float, metavar="SHARE",
                        help="its correlation length (share of half the domain's longer side)")
    member.add_argument("--perturb-prior-weight", type=float, metavar="LOGSTD",
                        help="log-std of the factor on the prior's weight")
    member.add_argument("--warm-start", type=Path, metavar="CHECKPOINT",
                        help="start the networks from a checkpoint file or folder (with a fresh optimiser)")
    data = parser.add_argument_group("data")
    data.add_argument("--data", type=Path, metavar="CSV", help="picks with header sx,sz,rx,rz,t (m, s)")
    data.add_argument("--domain", metavar="X0,X1,Z0,Z1", help="domain of --data in metres")
    run = parser.add_argument_group("run and output")
    run.add_argument("--experiment", help="experiment (sweep) name")
    run.add_argument("--run-name", help="run name (default <optimizer>-<activation>-<time>-<tag>)")
    run.add_argument("--out", type=Path, help="output folder (default runs/<run name>)")
    run.add_argument("--with-baseline", action="store_true", help="also invert with PyGIMLi and add its panel")
    run.add_argument("--checkpoint-every", metavar="N|DURATION",
                     help="write a checkpoint every N epochs (2000) or every DURATION (90s, 10m, 1h); 'off' for "
                          "none (default 10m: bounds the work a lost node costs, whatever the epoch speed)")
    run.add_argument("--resume", metavar="RUN",
                     help="continue RUN (name or id in the store, or a checkpoint file or folder) from its last "
                          "checkpoint as a new run linked to it (resumed_from)")
    run.add_argument("--resume-agent", help=argparse.SUPPRESS)  # who decided to resume (drivers: sweep:retry)
    run.add_argument("--snapshot-every", type=int, metavar="N",
                     help="send the velocity model on its scoring grid every N epochs (default 1000; 0 = only the "
                          "final one)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    capture = parser.add_argument_group("provenance capture")
    capture.add_argument("--store", metavar="URL", help="provenance store, e.g. sqlite:///runs/prov.db")
    capture.add_argument("--otlp-endpoint", metavar="URL", help="send OTLP to a collector instead")
    capture.add_argument("--capture-every", type=int, metavar="K", help="capture every K-th epoch")
    capture.add_argument("--no-capture", action="store_true", help="train without provenance capture")
    capture.add_argument("--no-system-metrics", action="store_true",
                         help="no CPU, memory and GPU metrics of the trainer (default: sampled every 5 s, "
                              "PINNPROV_SYSTEM_METRICS=0 also turns them off)")


def load_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"--config: {path}: no such file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text)
    except (json.JSONDecodeError, ValueError) as error:
        raise ValueError(f"--config: {path}: {str(error).splitlines()[0]}") from None
    except Exception as error:  # yaml.YAMLError has no common base with ValueError
        raise ValueError(f"--config: {path}: invalid YAML: {str(error).splitlines()[0]}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"--config: {path}: expected a mapping of keys to values, got {type(values).__name__}")
    return values


def build_config(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """TrainConfig from file + flags (flags win), and the file-only keys (data, domain)."""
    from pinnprov.pinn.config import TrainConfig
    from pinnprov.pinn.runinfo import new_run_name

    values = load_config_file(args.config) if args.config else {}
    extras = {key: values.pop(key) for key in FILE_ONLY_KEYS if key in values}
    for flag, key in FLAG_FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            values[key] = value
    config = TrainConfig.from_mapping(values)
    if not config.run_name:
        config = config.replace(run_name=new_run_name(config.optimizer, config.activation))
    return config, extras


def load_data(args: argparse.Namespace, extras: dict[str, Any]) -> Any:
    """The picks of --data/--domain (or the config file's data/domain), else the benchmark."""
    from pinnprov.experiments.run_outputs import load_picks_or_benchmark

    data_path = args.data or extras.get("data")
    domain_text = args.domain or extras.get("domain")
    return load_picks_or_benchmark(data_path, domain_text)


def quiet_python_logging() -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=UserWarning, module="tensorflow")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass


def train_and_report(args: argparse.Namespace, config: Any, data: Any, observers: list[Any], commands: Any,
                     resume: Any = None) -> int:
    """Train `config` on `data` reporting to `observers` and steered by `commands`; write and print the outputs.

    Every file written (networks, checkpoints during training; grids, figure, result.json after it) is reported
    to the observers as an ArtifactWritten event, so it becomes a PROV entity of the run
    (pinnprov/experiments/run_products.py).
    """
    from pinnprov.experiments.run_products import checkpoint_policy, report_outputs, resumed_by
    from pinnprov.pinn.products import DEFAULT_SNAPSHOT_EVERY
    from pinnprov.pinn.progress import ProgressBar
    from pinnprov.pinn.trainer import train

    out = args.out or Path("runs") / config.run_name
    out.mkdir(parents=True, exist_ok=True)
    progress = [] if args.no_progress else [ProgressBar()]
    snapshot_every = DEFAULT_SNAPSHOT_EVERY if getattr(args, "snapshot_every", None) is None else args.snapshot_every
    if snapshot_every < 0:
        raise ValueError(f"--snapshot-every: must be >= 0 (got {snapshot_every})")
    warm_start = None
    if getattr(args, "warm_start", None) is not None:
        from pinnprov.pinn.checkpoints import load

        try:
            warm_start = load(args.warm_start)
        except ValueError as error:
            raise ValueError(f"--warm-start: {str(error).removeprefix('resume: ')}") from None
    result = train(config, data, [*observers, *progress], commands, checkpoints=checkpoint_policy(args, out),
                   resume=resume, resumed_by=resumed_by(args), snapshot_every=snapshot_every,
                   networks_dir=out / "networks", warm_start=warm_start)
    baseline = run_baseline(data) if args.with_baseline else None
    written = write_outputs(out, config, data, result, baseline)
    report_outputs(observers, result, written, baseline)
    print_result(result, data, config, written, baseline)
    return 0


def run_baseline(data: Any) -> Any:
    try:
        from pinnprov.pinn.baseline_pygimli import invert
    except ImportError as error:
        print(f"pinnprov train: PyGIMLi baseline unavailable ({error})", file=sys.stderr)
        return None
    return invert(data)


def write_outputs(out: Path, config: Any, data: Any, result: Any, baseline: Any) -> list[Path]:
    import numpy as np

    from pinnprov.experiments.run_outputs import json_default
    from pinnprov.pinn.scoring import true_model

    written = [out / "velocity_pinn.npy", out / "grid_x.npy", out / "grid_z.npy"]
    np.save(written[0], result.velocity_grid)
    np.save(written[1], result.grid_x)
    np.save(written[2], result.grid_z)
    panels: list[tuple[str, Any, float | None]] = []
    exact = true_model(data)
    if exact is not None:
        truth = exact(result.grid_x, result.grid_z)
        np.save(out / "velocity_true.npy", truth)
        written.append(out / "velocity_true.npy")
        panels.append(("True model", truth, None))
    if baseline is not None:
        np.save(out / "velocity_pygimli.npy", baseline.velocity_grid)
        written.append(out / "velocity_pygimli.npy")
        panels.append(("PyGIMLi", baseline.velocity_grid, baseline.r2))
    panels.append(("PINN", result.velocity_grid, result.metrics.get("r2")))
    written.append(_figure(out, panels, data))
    summary = {
        "run_id": result.run_id, "run_name": result.run_name, "status": result.status, "epochs": result.epochs,
        "stop_reason": result.stop_reason, "metrics": result.metrics, "dataset": data.identity().__dict__,
        "hyperparameters": result.hyperparameters,
    }
    if baseline is not None:
        summary["baseline"] = {"method": "pygimli", "r2": baseline.r2, "rmse_m_s": baseline.rmse_m_s,
                               "seconds": baseline.seconds}
    path = out / "result.json"
    path.write_text(json.dumps(summary, indent=2, default=json_default) + "\n", encoding="utf-8")
    written.append(path)
    return written


def _figure(out: Path, panels: list[tuple[str, Any, float | None]], data: Any) -> Path:
    from pinnprov.experiments.run_outputs import comparison_png
    from pinnprov.pinn.figures import grid_extent
    from pinnprov.pinn.scoring import grid_for

    # Panels are sampled on the scoring grid, which stops at 27.5 m on the benchmark: draw its cells, not the domain.
    return comparison_png(out, panels, data, grid_extent(*grid_for(data)))


def print_result(result: Any, data: Any, config: Any, written: list[Path], baseline: Any = None) -> None:
    m = result.metrics
    lines = [f"run {result.run_name} ({result.run_id}) {result.status} after {result.epochs} epochs "
             f"in {m.get('seconds', math.nan):.1f} s" + (f": {result.stop_reason}" if result.stop_reason else "")]
    if "r2" in m:
        lines.append(f"velocity R2 {m['r2']:.3f}, RMSE {m['rmse_m_s']:.1f} m/s (PINN; scoring grid, exact model)")
    if baseline is not None and getattr(baseline, "r2", None) is not None:
        lines.append(f"velocity R2 {baseline.r2:.3f}, RMSE {baseline.rmse_m_s:.1f} m/s (PyGIMLi baseline; same grid "
                     "and exact model)")
    noise = config.noise_level_s
    lines.append(f"data RMS {m['data_rms_s'] * 1e3:.4f} ms" + (f" (noise level {noise * 1e3:.4f} ms)" if noise else ""))
    if getattr(result, "noise_estimate", None) is not None:
        lines.append(f"pick noise estimated from the data: {result.noise_estimate.describe()}"
                     + ("" if noise else "; if your picks' uncertainty says otherwise, pass --noise-level"))
    networks = [str(path) for _, path in getattr(result, "artifacts", []) if path.suffix in (".keras", ".npz")
                and path.parent.name == "networks"]
    lines.append(f"wrote {', '.join([*(str(p) for p in written), *networks])}")
    print("\n".join(lines))
