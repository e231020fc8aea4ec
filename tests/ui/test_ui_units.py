"""Unit tests of the UI's pure parts: bucket rows to chart points, Table 1's K, Host parsing and the exposure rule,
the steering payload, and the vendored assets against their pins."""

from __future__ import annotations

import pytest

from pinnprov.store.queries import SERIES_COLUMNS
from pinnprov.ui.downsample import columns_from_buckets, columns_from_epochs
from pinnprov.ui.reads import nice_every
from pinnprov.ui.security import Guard, split_host
from pinnprov.ui.server import allowed_hosts, check_exposure, is_loopback, url_for
from pinnprov.ui.steer import VIA_UI, command_from_payload
from pinnprov.ui.vendor import PACKAGES, UPLOT, mismatches

BUCKET_COLUMNS = ["bucket", "first_epoch", "last_epoch", "row_count"] + [
    f"{name}_{end}" for name in SERIES_COLUMNS for end in ("min", "max")]


def _bucket(bucket: int, first: int, last: int, low: float | None, high: float | None) -> list[object]:
    return [bucket, first, last, last - first + 1] + [value for _ in SERIES_COLUMNS for value in (low, high)]


def test_buckets_become_two_points_ordered_by_the_trend() -> None:
    rows = [_bucket(0, 0, 0, 100.0, 100.0), _bucket(1, 1, 9, 50.0, 90.0), _bucket(2, 10, 19, 60.0, 95.0),
            _bucket(3, 20, 29, 10.0, 40.0), _bucket(4, 30, 30, 5.0, 5.0)]
    columns = columns_from_buckets(BUCKET_COLUMNS, rows)
    assert columns["epoch"] == [0, 1, 9, 10, 19, 20, 29, 30]
    # falling from 100: max first; rising (77.5 > 70): min first; falling again: max first
    assert columns["loss"] == [100.0, 90.0, 50.0, 60.0, 95.0, 40.0, 10.0, 5.0]
    assert set(columns) == {"epoch", *SERIES_COLUMNS}


def test_null_and_non_finite_values_become_gaps() -> None:
    rows = [_bucket(0, 0, 0, None, None), _bucket(1, 1, 5, float("nan"), float("inf")), _bucket(2, 6, 6, 1.0, 1.0)]
    columns = columns_from_buckets(BUCKET_COLUMNS, rows)
    assert columns["epoch"] == [0, 1, 5, 6] and columns["loss"] == [None, None, None, 1.0]
    raw = columns_from_epochs(["epoch", *SERIES_COLUMNS], [[3, *([float("-inf")] * len(SERIES_COLUMNS))]])
    assert raw["epoch"] == [3] and raw["loss"] == [None]


@pytest.mark.parametrize(("last", "every"), [(None, 1), (0, 1), (9, 1), (30_000, 5000), (29_999, 5000),
                                             (1000, 100), (1001, 200), (200_000, 20_000), (55, 10)])
def test_table1_every_is_round(last: int | None, every: int) -> None:
    assert nice_every(last) == every


@pytest.mark.parametrize(("header", "parsed"), [
    ("127.0.0.1:8765", ("127.0.0.1", 8765)), ("LOCALHOST", ("localhost", None)), ("[::1]:80", ("::1", 80)),
    ("[::1]", ("::1", None)), ("host:x", ("host", -1)),
])
def test_split_host(header: str, parsed: tuple[str, int | None]) -> None:
    assert split_host(header) == parsed


def test_host_check_and_token_comparison() -> None:
    guard = Guard("t" * 48, allowed_hosts("127.0.0.1"), 8765)
    for header in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "127.0.0.1"):
        assert guard.host_allowed(header), header
    assert not guard.host_allowed("127.0.0.1:8766") and not guard.host_allowed("example.org:8765")
    assert not guard.host_allowed(None) and not guard.host_allowed("")
    assert guard.matches("t" * 48) and not guard.matches("t" * 47) and not guard.matches(None)
    assert "0.0.0.0" not in allowed_hosts("0.0.0.0") and "db-node" in allowed_hosts("0.0.0.0", ("DB-node",))


def test_exposure_needs_tls_or_an_explicit_flag() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_loopback(host)
        check_exposure(host, tls=False, allow_insecure_remote=False)
    for host in ("0.0.0.0", "::", "10.1.2.3", "node-1.grid5000.fr"):
        assert not is_loopback(host)
        with pytest.raises(ValueError, match=f"refusing to serve on {host} without TLS"):
            check_exposure(host, tls=False, allow_insecure_remote=False)
        check_exposure(host, tls=True, allow_insecure_remote=False)
        check_exposure(host, tls=False, allow_insecure_remote=True)


def test_printed_url() -> None:
    assert url_for("127.0.0.1", 8765, "abc", tls=False) == "http://127.0.0.1:8765/?token=abc"
    assert url_for("::1", 1, "abc", tls=True) == "https://[::1]:1/?token=abc"


def test_steering_payload_becomes_a_validated_command() -> None:
    command = command_from_payload({"kind": "scale_lr", "value": 0.5, "reason": " plateau "}, "user:ann")
    assert (command.kind, command.value, command.agent, command.reason) == ("scale_lr", 0.5, "user:ann",
                                                                            f"plateau {VIA_UI}")
    stop = command_from_payload({"kind": "stop", "value": "ignored", "parameter": "x", "reason": "done"}, "user:ann")
    assert (stop.kind, stop.value, stop.parameter) == ("stop", 0.0, "")
    with pytest.raises(ValueError, match="finite number"):
        command_from_payload({"kind": "set_lr", "value": True, "reason": "r"}, "user:ann")
    with pytest.raises(ValueError, match="longer than"):
        command_from_payload({"kind": "stop", "reason": "x" * 501}, "user:ann")


def test_vendored_assets_are_exactly_the_pinned_files() -> None:
    assert UPLOT.licence == "MIT" and UPLOT.version == "1.6.32"
    for package in PACKAGES:
        assert mismatches(package) == [], package.name
        assert set(package.files) >= {"LICENSE"}


def test_the_listening_socket_is_tcp_so_responses_are_not_delayed() -> None:
    """asyncio sets TCP_NODELAY only on accepted sockets whose proto is IPPROTO_TCP; with proto 0 every small
    response on a keep-alive connection (a page's poll) waited ~40 ms for a delayed ACK."""
    import socket

    from pinnprov.ui.server import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
