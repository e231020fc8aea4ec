"""`pinnprov ui` as a user starts it: bad input is one line and exit 2; the real process prints its URL with a token,
serves http on loopback, https with --certfile/--keyfile, and waits for a store that does not exist yet."""

from __future__ import annotations

import contextlib
import io
import subprocess
from pathlib import Path

import pytest
import requests
from prov_builders import request_for, write_store
from ui_browser import UiProcess
from ui_stores import store_runs

from pinnprov.cli import main as cli


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("args", "message"), [
    (["--host", "0.0.0.0"], "refusing to serve on 0.0.0.0 without TLS"),
    (["--host", "10.0.0.7", "--port", "0"], "refusing to serve on 10.0.0.7 without TLS"),
    (["--certfile", "c.pem"], "--certfile and --keyfile go together"),
    (["--port", "70000"], "--port must be in [0, 65535]"),
    (["--store", "ftp://host/db"], "unsupported scheme 'ftp'"),
    (["--store", "monetdb://monetdb:monetdb@127.0.0.1:1/none"], "cannot connect to monetdb://"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    code, out, err = _cli("ui", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "open http" not in out


def test_the_process_prints_its_url_and_waits_for_the_store(tmp_path: Path) -> None:
    db = tmp_path / "later.db"
    ui = UiProcess(f"sqlite:///{db}", log=tmp_path / "ui.log")
    try:
        assert ui.url.startswith("http://127.0.0.1:") and len(ui.token) == 48
        headers = {"X-PinnProv-Token": ui.token}
        assert requests.get(f"{ui.base}/api/runs", timeout=30).status_code == 403
        assert requests.get(f"{ui.base}/api/runs", headers=headers, timeout=30).status_code == 503
        write_store(db, request_for(*store_runs()))
        runs = requests.get(f"{ui.base}/api/runs", headers=headers, timeout=30).json()["runs"]
        assert len(runs) == 4
    finally:
        ui.stop()
    assert not (tmp_path / "ui.log").read_text().count("Traceback")


def test_tls_serves_https_with_a_secure_cookie(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    db = tmp_path / "prov.db"
    write_store(db, request_for(*store_runs()))
    ui = UiProcess(f"sqlite:///{db}", "--certfile", str(cert), "--keyfile", str(key), log=tmp_path / "ui.log")
    try:
        assert ui.url.startswith("https://127.0.0.1:")
        first = requests.get(ui.url, verify=str(cert), timeout=30, allow_redirects=False)
        assert first.status_code == 303 and "; Secure" in first.headers["set-cookie"]
        answer = requests.get(f"{ui.base}/api/runs", headers={"X-PinnProv-Token": ui.token}, verify=str(cert),
                              timeout=30)
        assert answer.status_code == 200 and len(answer.json()["runs"]) == 4
    finally:
        ui.stop()
