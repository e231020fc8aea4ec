"""`pinnprov train`: train the factored-eikonal PINN with provenance capture, print the result, write figures.

Settings come from flags, then a --config file (YAML or JSON, keys of pinn.config.TrainConfig), then the
tuned defaults (flags, config and outputs: experiments/training.py). Capture is wired here through
pinnprov.capture.open_capture, and steering reads commands from wherever the provenance goes. TensorFlow is
imported only when the command runs, so other commands start fast.
"""

from __future__ import annotations

import argparse
from typing import Any

from experiments.training import add_train_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train the PINN on the benchmark or your picks",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(parser)
    parser.set_defaults(handler=run_train)


def _validate_capture_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.capture_every is not None and args.capture_every < 1:
        raise ValueError(f"--capture-every: must be at least 1 (got {args.capture_every})")
    kwargs: dict[str, Any] = {"enabled": not args.no_capture}
    for key in ("store", "otlp_endpoint", "capture_every"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    return kwargs


def run_train(args: argparse.Namespace) -> int:
    from experiments.training import build_config, load_data, quiet_python_logging, train_and_report

    capture_kwargs = _validate_capture_args(args)
    config, extras = build_config(args)  # bad flags and files fail here, before TensorFlow loads
    data = load_data(args, extras)
    quiet_python_logging()
    from pinn.trainer import configure_threads

    configure_threads(config.threads)  # before any TensorFlow op runs
    from pinnprov.capture import command_source_for, open_capture

    # Steering reads commands from wherever the provenance goes: the same store or the same collector.
    steering = {key: capture_kwargs[key] for key in ("store", "otlp_endpoint", "enabled") if key in capture_kwargs}
    with open_capture(**capture_kwargs) as observers, command_source_for(**steering) as commands:
        return train_and_report(args, config, data, observers, commands)
