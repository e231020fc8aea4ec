"""`pinnprov steer RUN ...`: change a running training from another terminal.

The command is written into the provenance store; the trainer polls it (directly in embedded mode, through
the collector otherwise), applies it at its next epoch boundary, acknowledges it, and records it as a PROV
Adaptation with you (`user:<login>`) as its agent and --reason as its reason.

Examples:
  pinnprov steer latest --set-lr 1e-4 --reason "loss oscillates"
  pinnprov steer adam-tanh --scale-lr 0.5
  pinnprov steer rmsprop-sigmoid --set-weight residual=10
  pinnprov steer rmsprop-sigmoid --stop --reason "Adam is far ahead" --wait 30
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pinnprov.cli.commands import Subparsers
    from pinnprov.store.access import Store

WAIT_POLL_S = 0.25


def register(subparsers: Subparsers) -> None:
    from pinnprov.cli.commands.query import STORE_HELP

    parser = subparsers.add_parser(
        "steer",
        help="change a running training: learning rate, loss weights, stop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", metavar="RUN", help="run name, run id, a prefix of either, or 'latest'")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--set-lr", type=float, metavar="RATE", help="set the learning rate in effect now")
    action.add_argument("--scale-lr", type=float, metavar="FACTOR", help="multiply the learning rate")
    action.add_argument("--set-weight", metavar="TERM=W", help="set a loss weight: residual, boundary or data")
    action.add_argument("--stop", action="store_true", help="end the run now (status stopped, keeps its data)")
    parser.add_argument("--reason", default="", help="why (recorded with the adaptation)")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS",
        help="wait up to SECONDS for the trainer to apply the command and print its answer",
    )
    parser.set_defaults(handler=handle)


def command_from_args(args: argparse.Namespace) -> tuple[str, float, str]:
    """(kind, value, parameter) of the chosen action; ValueError for a malformed --set-weight."""
    if args.stop:
        return "stop", 0.0, ""
    if args.set_lr is not None:
        return "set_lr", args.set_lr, ""
    if args.scale_lr is not None:
        return "scale_lr", args.scale_lr, ""
    term, sep, weight = str(args.set_weight).partition("=")
    if not sep:
        raise ValueError(f"--set-weight: expected TERM=W such as residual=10, got {args.set_weight!r}")
    try:
        value = float(weight)
    except ValueError:
        raise ValueError(f"--set-weight: weight must be a number, got {weight!r}") from None
    return "set_weight", value, term.strip()


def _open_writable(url: str | None) -> Store:
    from pinnprov.core.settings import resolve_store_url
    from pinnprov.store.access import open_store, sqlite_path

    resolved = resolve_store_url(url)
    path = sqlite_path(resolved)
    if path is not None and not path.is_file():  # never create an empty store just to refuse the run
        raise FileNotFoundError(f"store not found: {path} (give --store URL or set PINNPROV_STORE)")
    return open_store(resolved, read_only=False)


def _run_label(store: Store, run_id: str) -> str:
    rows = store.execute("SELECT run_name FROM run WHERE run_id = :run_id", {"run_id": run_id}).rows
    name = rows[0][0] if rows and rows[0][0] else ""
    return f"{name} ({run_id})" if name else run_id


def _wait_for_answer(store: Store, run_id: str, command_id: str, timeout_s: float) -> int:
    from pinnprov.store.access import list_commands

    deadline = time.monotonic() + timeout_s
    while True:
        row = next((r for r in list_commands(store, run_id) if r.command_id == command_id), None)
        if row is not None and row.state != "pending":
            print(f"{row.state}: {row.detail}" if row.detail else row.state)
            return 0 if row.state == "applied" else 1
        if time.monotonic() >= deadline:
            print(f"pinnprov steer: still pending after {timeout_s:g} s (the trainer applies it when it next polls)",
                  file=sys.stderr)
            return 1
        time.sleep(WAIT_POLL_S)


def handle(args: argparse.Namespace) -> int:
    from pinnprov.core.steering import new_command, user_agent
    from pinnprov.store.run_select import resolve_run
    from pinnprov.store.steering_channel import submit

    if args.wait < 0:
        raise ValueError(f"--wait: must be >= 0 seconds, got {args.wait}")
    kind, value, parameter = command_from_args(args)
    command = new_command(kind, value, parameter, agent=user_agent(), reason=args.reason)  # validates first
    with _open_writable(args.store) as store:
        run_id = resolve_run(store, args.run)
        label = _run_label(store, run_id)
        try:
            submit(store, run_id, command)
        except ValueError as error:  # name the run as the user knows it
            raise ValueError(str(error).replace(f"run {run_id}", f"run {label}")) from None
        what = "stop" if kind == "stop" else f"{kind} {parameter + '=' if parameter else ''}{value:g}"
        print(f"queued {what} for run {label} as command {command.command_id} (agent {command.agent})")
        if args.wait:
            return _wait_for_answer(store, run_id, command.command_id, args.wait)
    return 0
