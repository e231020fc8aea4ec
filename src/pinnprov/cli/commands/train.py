"""`pinnprov train`: train the factored-eikonal PINN with provenance capture, print the result, write figures.

Settings come from flags, then a --config file (YAML or JSON, keys of pinn.config.TrainConfig), then the
tuned defaults (flags, config and outputs: pinnprov/experiments/training.py). Capture is wired here through
pinnprov.capture.open_capture, and steering reads commands from wherever the provenance goes. TensorFlow is
imported only when the command runs, so other commands start fast.

With --ensemble N the problem is trained N times as `pinnprov train` processes into one store (the sweep machinery):
by default as a randomized-maximum-likelihood ensemble (the ordinary run, then N - 1 members that fit perturbed picks
under a perturbed prior, warm-started from it; pinnprov/pinn/rml_plan.py), or with --ensemble-method seeds from
seeds seed .. seed+N-1. The per-cell mean, standard deviation and 90 % interval of their velocity models are written
to --out with Figure 2's uncertainty panel; the ensemble is recorded in the store as a run of its own that its
members are `member_of` (pinnprov/experiments/ensemble_run.py).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pinnprov.experiments.training import add_train_arguments

if TYPE_CHECKING:
    from pinnprov.cli.commands import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("train", help="train the PINN on the benchmark or your picks",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(parser)
    # Here, not in add_train_arguments: sweeps pass train's flags through, and an ensemble is not a sweep axis.
    uncertainty = parser.add_argument_group("uncertainty")
    uncertainty.add_argument("--ensemble", type=int, metavar="N",
                             help="train N members and write their mean, per-cell std and 90 %% interval "
                                  "(default 1: a single run)")
    uncertainty.add_argument("--ensemble-method", choices=("rml", "seeds"), default="rml",
                             help="rml (default): perturbed picks and prior, calibrated spread; seeds: the same "
                                  "problem from N seeds (a spread that is not an error bar)")
    parser.set_defaults(handler=run_train)


def _validate_capture_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.capture_every is not None and args.capture_every < 1:
        raise ValueError(f"--capture-every: must be at least 1 (got {args.capture_every})")
    kwargs: dict[str, Any] = {"enabled": not args.no_capture}
    if args.no_system_metrics:
        kwargs["system_metrics"] = False
    for key in ("store", "otlp_endpoint", "capture_every"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    return kwargs


def run_train(args: argparse.Namespace) -> int:
    from pinnprov.experiments.training import build_config, load_data, quiet_python_logging, train_and_report

    capture_kwargs = _validate_capture_args(args)
    if args.ensemble is not None:
        from pinnprov.experiments.ensemble_run import check_ensemble_args

        check_ensemble_args(args)
    config, extras = build_config(args)  # bad flags and files fail here, before TensorFlow loads
    data = load_data(args, extras)
    resume = None
    if args.resume:
        from pinnprov.experiments.run_products import load_resume, resumed_config

        if args.ensemble is not None and args.ensemble > 1:
            raise ValueError("--resume: resumes one run, not an ensemble")
        resume = load_resume(args.resume, args.store)
        config = resumed_config(resume, args)
    if args.ensemble is not None and args.ensemble > 1:
        from pinnprov.experiments.ensemble_run import run_ensemble

        return run_ensemble(args, config, data)  # the members load TensorFlow, this process does not
    quiet_python_logging()
    from pinnprov.pinn.trainer import configure_threads

    configure_threads(config.threads)  # before any TensorFlow op runs
    from pinnprov.capture.capture_settings import resolve_capture_settings
    from pinnprov.wiring import command_source_for, open_capture

    # One resolved settings object: steering reads commands from wherever the provenance goes (the same store or
    # the same collector), and the observers are the run API's hand-off (pinnprov.capture.event_handoff.EventHandoff).
    settings = resolve_capture_settings(**capture_kwargs)
    with open_capture(settings) as observers, command_source_for(settings) as commands:
        return train_and_report(args, config, data, observers, commands, resume)
