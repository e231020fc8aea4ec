"""The `steer` action's channel: queue a steering command for the run in the provenance store.

The trainer's poller reads pending commands from the store (directly or through the collector's
/v1/steering endpoint), applies them at the next epoch and records the Adaptation with the agent
`rule:<name>`. The command id is the alert id, so a replayed firing never queues a second command.

Why retries: a rule can fire on the very batch that brings the run's start, and actions run on a worker
thread while the sink is still writing that batch; the run row appears a moment later.
"""

from __future__ import annotations

import time

from pinnprov.core.steering import SteeringCommand


class StoreSteering:
    """A `SteerFunction` writing to the store at `url` (sqlite:///..., monetdb://...)."""

    def __init__(self, url: str, *, wait_for_run_s: float = 10.0, poll_s: float = 0.25) -> None:
        self.url = url
        self.wait_for_run_s = wait_for_run_s
        self.poll_s = poll_s

    def __call__(self, run_id: str, command: SteeringCommand) -> None:
        from pinnprov.core.steering import validate
        from pinnprov.store import steering_channel as channel
        from pinnprov.store.access import open_store

        validate(command.kind, command.value, command.parameter)
        deadline = time.monotonic() + self.wait_for_run_s
        while True:
            with open_store(self.url, read_only=False) as store:
                if channel.run_status(store, run_id) is not None or time.monotonic() >= deadline:
                    channel.submit(store, run_id, command)  # raises ValueError for unknown/finished runs
                    return
            time.sleep(self.poll_s)
