"""`pinnprov ui` benchmarks, one JSON line per result.

1. endpoint: response time (median, p99) of the run page's data endpoint, /api/runs/RUN/series, over HTTP on a
   real uvicorn, for runs of 10k, 100k, 200k and 1M epochs: the first load (whole run, min/max buckets), a zoom
   (1,000 epochs, every epoch) and a poll (epochs after the last seen). The store is generated once through the
   real SQLite sink and cached under /tmp.
2. render (needs Debian's chromium + chromium-driver and selenium): headless Chromium opens the run page; the page
   records the time from navigation start to its first drawn curves.
3. overhead: one real `pinnprov train` (default model, stopping off) is measured with and without two open run
   pages, alternating segments in the same run: `--pages http` polls exactly as the page does (what the UI server
   and the store cost the trainer; the browser would be on the user's machine), `--pages browser` keeps two real
   headless Chromium tabs open (their rendering shares this machine's CPU too). ratio = epoch rate with pages /
   epoch rate without, median over ON segments against their OFF neighbours.

    python bench/ui.py [--only endpoint,render,overhead] [--pages http|browser|both] [--segment-s 20]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "support"))

SIZES = (10_000, 100_000, 200_000, 1_000_000)
T0 = 1_700_000_000.0


def _emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def _run_id(size: int) -> str:
    return f"{size:032x}"


def generate(path: Path) -> None:
    """One run per size through the real SQLite sink; a half-built file is never reused."""
    from pinnprov.store.records import EpochRecord, RunEndRecord, RunStartRecord
    from pinnprov.store.sqlite_sink import SqliteSink

    partial = path.with_name(path.name + ".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    sink = SqliteSink(partial, synchronous="OFF", export_timeout_s=600)
    rng = random.Random(7)
    for size in SIZES:
        run_id = _run_id(size)
        hyper = {"optimizer": "adam", "activation": "tanh", "lr.schedule": "exponential_decay", "lr.initial": 1e-3,
                 "lr.decay_rate": 0.99, "lr.decay_steps": 1000}
        assert sink.export([RunStartRecord(run_id, "1" * 16, f"big-{size}", "bench-ui", T0, hyper)]).ok
        clock, batch = T0, []
        for epoch in range(size):
            loss = 1000.0 * (1 + epoch) ** -1.2 * (1 + 0.05 * rng.random())
            lr = 1e-3 * 0.99 ** (epoch / 1000)
            elapsed = 0.01 + 0.002 * rng.random()
            batch.append(EpochRecord(run_id, f"{epoch + 2:016x}", epoch, clock, clock + 0.01, elapsed,
                                     loss, loss * 1e-5, loss * 1e-3, loss * 0.04, lr))
            clock += 0.01
            if len(batch) == 50_000:
                assert sink.export(batch).ok
                batch = []
        batch.append(RunEndRecord(run_id, "f" * 16, clock, "completed", size))
        assert sink.export(batch).ok
    sink.shutdown()
    partial.replace(path)


def is_complete(path: Path) -> bool:
    from pinnprov.store.access import open_store

    if not path.is_file():
        return False
    try:
        with open_store(str(path)) as store:
            rows = store.execute("SELECT run_name, last_epoch FROM run ORDER BY last_epoch").rows
    except (ValueError, OSError):
        return False
    return rows == [(f"big-{size}", size - 1) for size in SIZES]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def bench_endpoint(path: Path, repeat: int) -> None:
    import requests
    from ui_stores import served

    with served(f"sqlite:///{path}") as app, requests.Session() as session:
        session.headers.update(app.headers())
        for size in SIZES:
            run = _run_id(size)
            cases = {
                "first_load": f"/api/runs/{run}/series?points=2000",
                "zoom_1000": f"/api/runs/{run}/series?from={size // 2}&to={size // 2 + 999}&points=2000",
                "poll_delta": f"/api/runs/{run}/series?after={size - 2}&points=2000",
            }
            for case, url in cases.items():
                session.get(app.base + url, timeout=120).raise_for_status()  # warm the page cache once
                samples, size_bytes = [], 0
                for _ in range(repeat if size < 1_000_000 or case != "first_load" else max(5, repeat // 4)):
                    begin = time.perf_counter()
                    answer = session.get(app.base + url, timeout=120)
                    samples.append((time.perf_counter() - begin) * 1000)
                    answer.raise_for_status()
                    size_bytes = len(answer.content)
                median, p99 = _percentiles(samples)
                points = len(answer.json()["columns"]["epoch"])
                _emit({"bench": "ui_series", "epochs": size, "request": case, "ms_median": round(median, 1),
                       "ms_p99": round(p99, 1), "points": points, "bytes": size_bytes, "repeat": len(samples),
                       "load": round(os.getloadavg()[0], 2)})


def bench_render(path: Path, repeat: int) -> None:
    from ui_browser import UiProcess, missing_browser, start_browser

    if missing_browser():
        _emit({"bench": "ui_render", "skipped": missing_browser()})
        return
    with tempfile.TemporaryDirectory() as tmp:
        ui = UiProcess(f"sqlite:///{path}", log=Path(tmp) / "ui.log")
        driver = start_browser(Path(tmp) / "profile")
        try:
            driver.get(ui.url)
            for size in SIZES:
                samples = []
                for _ in range(repeat):
                    driver.get(f"{ui.base}/runs/big-{size}")
                    deadline = time.monotonic() + 60
                    rendered = None
                    while rendered is None and time.monotonic() < deadline:
                        rendered = driver.find_element("id", "charts").get_attribute("data-rendered-ms")
                        time.sleep(0.02)
                    samples.append(float(rendered or "nan"))
                median, p99 = _percentiles(samples)
                _emit({"bench": "ui_render", "epochs": size, "ms_median": round(median), "ms_max": round(max(samples)),
                       "repeat": repeat, "what": "navigation start to first drawn curves, headless Chromium",
                       "load": round(os.getloadavg()[0], 2)})
        finally:
            driver.quit()
            ui.stop()


class HttpPage:
    """What one open run page requests: epochs after the last seen every 1 s, the run every 3 s, Table 1 every 30 s."""

    def __init__(self, base: str, token: str, run: str) -> None:
        import requests

        self.session = requests.Session()
        self.session.headers["X-PinnProv-Token"] = token
        self.base, self.run = base, run
        self.active = threading.Event()
        self.done = threading.Event()
        self.requests = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _get(self, path: str) -> Any:
        self.requests += 1
        return self.session.get(self.base + path, timeout=30).json()

    def _loop(self) -> None:
        last, tick = None, 0
        while not self.done.is_set():
            if not self.active.wait(0.2):
                last, tick = None, 0  # a page opened again starts with the whole run
                continue
            if last is None:
                last = self._get(f"/api/runs/{self.run}/series?points=2800")["last_epoch"]
                self._get(f"/api/runs/{self.run}")
                self._get(f"/api/runs/{self.run}/table1")
            else:
                last = self._get(f"/api/runs/{self.run}/series?after={last}&points=2800")["last_epoch"]
                if tick % 3 == 0:
                    self._get(f"/api/runs/{self.run}")
                if tick % 30 == 0:
                    self._get(f"/api/runs/{self.run}/table1")
            tick += 1
            time.sleep(1.0)


class BrowserPages:
    def __init__(self, base: str, run: str, profile: Path) -> None:
        from ui_browser import start_browser

        self.driver = start_browser(profile)
        self.base, self.run = base, run
        self.driver.get(f"{base}/")
        self.driver.execute_script("window.open('about:blank')")
        self.handles = self.driver.window_handles[:2]

    def show(self, on: bool) -> None:
        for handle in self.handles:
            self.driver.switch_to.window(handle)
            self.driver.get(f"{self.base}/runs/{self.run}" if on else "about:blank")

    def close(self) -> None:
        self.driver.quit()


def _rates(db: Path, run_name: str, segments: list[tuple[float, float, bool]]) -> list[tuple[bool, float]]:
    from collector_process import rows

    ended = [row[0] for row in rows(db, "SELECT e.ended_at FROM epoch_metric e JOIN run r ON r.run_id = e.run_id "
                                        "WHERE r.run_name = ? ORDER BY e.ended_at", (run_name,))]
    rates = []
    for start, end, on in segments:
        inside = [at for at in ended if start + 2.0 <= at < end]  # 2 s settle: pages opening or closing
        rates.append((on, len(inside) / (end - start - 2.0)))
    return rates


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_overhead(mode: str, segment_s: float, cycles: int, token_wait_s: float = 300) -> None:
    from collector_process import rows, wait_for
    from ui_browser import UiProcess, missing_browser

    if mode == "browser" and missing_browser():
        _emit({"bench": "ui_overhead", "pages": mode, "skipped": missing_browser()})
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "prov.db"
        run_name = f"ui-overhead-{mode}"
        total_s = segment_s * 2 * cycles + 120
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        log = (work / "train.log").open("w")
        train = subprocess.Popen(
            [sys.executable, "-m", "pinnprov", "train", "--epochs", "10000000", "--stopping", "none", "--threads", "1",
             "--time-budget", str(total_s), "--no-progress", "--store", f"sqlite:///{db}", "--run-name", run_name,
             "--out", str(work / "out")], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        ui = pages = None
        http_pages: list[HttpPage] = []
        try:
            wait_for(lambda: rows(db, "SELECT 1 FROM run WHERE run_name = ? AND last_epoch >= 300", (run_name,)),
                     timeout_s=token_wait_s, what="the training past its compilation")
            ui = UiProcess(f"sqlite:///{db}", log=work / "ui.log")
            if mode == "browser":
                pages = BrowserPages(ui.base, run_name, work / "profile")
                pages.driver.get(ui.url)
            else:
                http_pages = [HttpPage(ui.base, ui.token, run_name) for _ in range(2)]
            segments, ui_cpu_on = [], 0.0
            for cycle in range(2 * cycles):
                on = cycle % 2 == 1
                if pages is not None:
                    pages.show(on)
                for page in http_pages:
                    (page.active.set if on else page.active.clear)()
                start, cpu = time.time(), _cpu_s(ui.proc.pid)
                time.sleep(segment_s)
                segments.append((start, time.time(), on))
                ui_cpu_on += _cpu_s(ui.proc.pid) - cpu if on else 0.0
            for page in http_pages:
                page.active.clear()
            requests_made = sum(page.requests for page in http_pages)
        finally:
            for page in http_pages:
                page.done.set()
            if pages is not None:
                pages.close()
            if ui is not None:
                ui.stop()
            train.terminate()
            train.wait(timeout=120)
            log.close()
        rates = _rates(db, run_name, segments)
        ratios = []
        for index, (on, rate) in enumerate(rates):
            if on:
                neighbours = [rates[j][1] for j in (index - 1, index + 1) if 0 <= j < len(rates)]
                ratios.append(rate / statistics.mean(neighbours))
        off_rates = [rate for on, rate in rates if not on]
        on_rates = [rate for on, rate in rates if on]
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else ratios
        _emit({"bench": "ui_overhead", "pages": mode, "open_pages": 2, "ratio": round(statistics.median(ratios), 4),
               "ratio_quartiles": [round(q, 4) for q in quartiles], "epochs_per_s_without": round(
                   statistics.median(off_rates), 1), "epochs_per_s_with": round(statistics.median(on_rates), 1),
               "segments": len(rates), "segment_s": segment_s,
               "ui_server_cpu_ms_per_s": round(1000 * ui_cpu_on / (segment_s * cycles), 1),
               "http_requests": requests_made if mode == "http" else None, "load": round(os.getloadavg()[0], 2)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="endpoint,render,overhead")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--pages", choices=("http", "browser", "both"), default="both")
    parser.add_argument("--segment-s", type=float, default=20.0)
    parser.add_argument("--cycles", type=int, default=4, help="OFF/ON pairs in the overhead run")
    parser.add_argument("--path", type=Path, default=Path("/tmp/pinnprov-bench-ui.db"))
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if parts & {"endpoint", "render"} and not is_complete(args.path):
        began = time.perf_counter()
        generate(args.path)
        _emit({"bench": "ui_store_generation", "epochs": sum(SIZES), "seconds": round(time.perf_counter() - began, 1)})
    if "endpoint" in parts:
        bench_endpoint(args.path, args.repeat)
    if "render" in parts:
        bench_render(args.path, max(3, args.repeat // 4))
    if "overhead" in parts:
        for mode in (("http", "browser") if args.pages == "both" else (args.pages,)):
            bench_overhead(mode, args.segment_s, args.cycles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
