"""Deal a sweep's runs to GPU lanes: the `assign_runs` filter of the trainer role.

Why a filter: the assignment needs every trainer's GPUs at once (a run goes to the next free slot over all
hosts), which Jinja expresses only with mutation that Ansible's templating forbids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def assign_runs(sweep: Sequence[Mapping[str, Any]], lanes_by_host: Mapping[str, Sequence[str]],
                host: str) -> list[dict[str, Any]]:
    """The runs `host` trains, each with its `lane` (a GPU index, or "cpu").

    Slots are (host, lane) pairs over hosts in sorted order; run i goes to slot i modulo the slot count, so
    runs spread over all GPUs first and a GPU gets a second run only when every GPU has one.
    """
    slots = [(name, str(lane)) for name in sorted(lanes_by_host) for lane in lanes_by_host[name]]
    if not slots:
        raise ValueError("assign_runs: no trainer has a GPU or CPU lane")
    mine = []
    for index, run in enumerate(sweep):
        slot_host, lane = slots[index % len(slots)]
        if slot_host == host:
            mine.append({**run, "lane": lane})
    return mine


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"assign_runs": assign_runs}
