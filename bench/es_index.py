"""Elasticsearch indexing throughput of the sink's bulk path, in documents per second.

- es_index: with PINNPROV_TEST_ELASTICSEARCH_URL set (credentials from PINNPROV_ES_*), the real sink writes
  `--runs` runs of `--epochs` epoch records in batches of `--batch` (what the pipeline hands it) into
  throwaway indices, and the indices are deleted afterwards. docs_per_s counts acknowledged documents.
  Without the URL it prints {"bench": "es_index", "skipped": reason}.
- es_bulk_encode: always; records -> bulk actions -> the ndjson body, on this machine (the CPU the
  collector spends per document before the network).

Usage: python bench/es_index.py [--epochs 20000] [--runs 4] [--batch 512]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pinnprov.collector.es_documents import RunInfo, encode_bulk, to_action  # noqa: E402
from pinnprov.store.records import EpochRecord, RunStartRecord  # noqa: E402


def records(runs: int, epochs: int) -> list[list[EpochRecord | RunStartRecord]]:
    """Per run: its start record, then its epochs (losses decaying, like a real run)."""
    t0 = time.time() - runs * epochs
    out = []
    for n in range(runs):
        run_id = uuid.uuid4().hex
        start = RunStartRecord(run_id=run_id, record_id=f"{n + 1:016x}", run_name=f"bench-{n}", experiment="bench",
                               started_at=t0, hyperparameters={"optimizer": "adam", "activation": "tanh"})
        rows: list[EpochRecord | RunStartRecord] = [start]
        for e in range(epochs):
            rows.append(EpochRecord(run_id=run_id, record_id=f"{e + 1:016x}", epoch=e, started_at=t0 + e,
                                    ended_at=t0 + e + 0.9, elapsed_s=0.9, loss=100.0 / (e + 1), loss_bc=1e-6,
                                    loss_residual=1e-3, loss_data=5e-4 / (e + 1),
                                    learning_rate=1e-3 * 0.99 ** (e / 1000),
                                    extra={"data_rms_s": 1e-5}))
        out.append(rows)
    return out


def bench_encode(batches: list[list[EpochRecord | RunStartRecord]]) -> dict[str, object]:
    info = RunInfo("bench-0", "bench", "adam", "tanh")
    flat = [r for batch in batches for r in batch]
    started = time.perf_counter()
    size = 0
    for i in range(0, len(flat), 512):
        size += len(encode_bulk([to_action(r, "pinnprov", info) for r in flat[i : i + 512]]))
    seconds = time.perf_counter() - started
    return {"bench": "es_bulk_encode", "docs": len(flat), "seconds": round(seconds, 3),
            "docs_per_s": round(len(flat) / seconds), "bytes_per_doc": round(size / len(flat))}


def bench_index(url: str, batches: list[list[EpochRecord | RunStartRecord]], batch: int) -> dict[str, object]:
    from pinnprov.collector.sinks.elasticsearch import ElasticsearchSink
    from pinnprov.core.es_indices import INDEX_KINDS, index_name

    prefix = f"pinnprov-bench-{uuid.uuid4().hex[:8]}"
    sink = ElasticsearchSink(url, index_prefix=prefix)
    try:
        sink.setup()
        written, started = 0, time.perf_counter()
        for rows in batches:
            for i in range(0, len(rows), batch):
                result = sink.export(rows[i : i + batch])
                if not result.ok:
                    raise RuntimeError(result.detail)
                written += result.written
        seconds = time.perf_counter() - started
        sink.client.indices.refresh(index=index_name(prefix, "epochs"))
        stored = sink.client.count(index=index_name(prefix, "epochs"))["count"]
        return {"bench": "es_index", "docs": written, "stored_epochs": stored, "batch": batch,
                "seconds": round(seconds, 3), "docs_per_s": round(written / seconds)}
    finally:
        for kind in INDEX_KINDS:
            sink.client.options(ignore_status=404).indices.delete(index=index_name(prefix, kind))
            sink.client.options(ignore_status=404).indices.delete_index_template(name=index_name(prefix, kind))
        sink.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20_000, help="epochs per run (default 20000)")
    parser.add_argument("--runs", type=int, default=4, help="runs (default 4)")
    parser.add_argument("--batch", type=int, default=512, help="records per sink export (default 512)")
    args = parser.parse_args()
    batches = records(args.runs, args.epochs)
    url = os.environ.get("PINNPROV_TEST_ELASTICSEARCH_URL", "")
    if url:
        print(json.dumps(bench_index(url, batches, args.batch)), flush=True)
    else:
        print(json.dumps({"bench": "es_index", "skipped": "PINNPROV_TEST_ELASTICSEARCH_URL is not set"}), flush=True)
    print(json.dumps(bench_encode(batches)), flush=True)


if __name__ == "__main__":
    main()
