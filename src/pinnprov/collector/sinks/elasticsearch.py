"""The Elasticsearch sink: PROV records as documents in `<prefix>-runs|epochs|adaptations|alerts`.

Contract (pinnprov.store.sink): `export` never raises. Index templates are installed on the first export
(idempotently: a template PUT replaces, a missing index is created, an existing one gets the template's
mapping added), so a collector that starts before Elasticsearch simply reports RETRYABLE until it is up.

Retries: the transport does none; this sink retries the whole bulk request on 429/5xx/connection errors
and, after a partial failure, only the documents that failed with 429/5xx, with exponential backoff and
jitter inside a bounded deadline. What is still failing then comes back RETRYABLE (the pipeline's spool
replays it; ids make replays harmless). Documents Elasticsearch refuses for good (mapping errors) come back
in `ExportResult.rejected` by their index in the batch, with the reason.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pinnprov.collector.es_client import (
    build_client,
    check_server_version,
    describe_error,
    error_status,
    is_retryable,
)
from pinnprov.collector.es_documents import (
    BulkAction,
    RunCache,
    RunInfo,
    encode_bulk,
    run_info_from_document,
    run_info_from_start,
    to_action,
)
from pinnprov.core.elastic_connection import resolve_connection, split_options
from pinnprov.core.es_indices import (
    DATA_STREAM_KINDS,
    DEFAULT_PREFIX,
    INDEX_KINDS,
    index_name,
    index_templates,
    validate_prefix,
)
from pinnprov.core.settings import resolve
from pinnprov.store.records import AdaptationRecord, AlertRecord, EpochRecord, ProvRecord, RunStartRecord
from pinnprov.store.sink import SINKS, ExportResult, ExportStatus

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

log = logging.getLogger(__name__)

BULK_FILTER = ["errors", "items.*.status", "items.*.error.type", "items.*.error.reason"]
"""Only what the sink reads from a bulk response: keeps large responses small."""
MAX_ACTIONS_PER_BULK = 2000
MAX_CACHED_RUNS = 10_000
PREFIX_ENV = "PINNPROV_ES_INDEX_PREFIX"
URL_OPTIONS = ("index_prefix", "ca_certs", "request_timeout")
"""Options a store URL may carry, e.g. elasticsearch+https://es:9200?index_prefix=g5k&ca_certs=/etc/es/ca.pem"""
LOOKUP_AGAIN_AFTER_S = 60.0
"""A run not found in Elasticsearch is looked up again only after this long (its start may still come)."""


def install_index_templates(client: Elasticsearch, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Put the index templates and make sure their indices (the metrics data stream) exist; returns what was done.

    Idempotent: re-running replaces the templates with the same content and only adds mapping fields.
    """
    report: list[str] = []
    for kind, body in index_templates(prefix).items():
        name = index_name(prefix, kind)
        client.indices.put_index_template(name=name, body=body)
        if client.indices.exists(index=name):
            mappings = body["template"]["mappings"]
            try:
                client.indices.put_mapping(index=name, body=mappings)
                report.append(f"{name}: template updated, mapping of existing index updated")
            except Exception as error:  # noqa: BLE001 - an incompatible old mapping must not stop ingestion
                if error_status(error) != 400:
                    raise
                log.warning("index %s keeps its old mapping: %s", name, describe_error(error))
                report.append(f"{name}: template updated, existing mapping incompatible ({describe_error(error)})")
            continue
        stream = kind in DATA_STREAM_KINDS
        what = "data stream" if stream else "index"
        try:
            if stream:
                client.indices.create_data_stream(name=name)
            else:
                client.indices.create(index=name)
            report.append(f"{name}: template installed, {what} created")
        except Exception as error:  # noqa: BLE001
            if "resource_already_exists_exception" not in str(error):
                raise
            report.append(f"{name}: template installed, {what} created concurrently")
    return report


@SINKS.register("elasticsearch")
class ElasticsearchSink:
    """Bulk-indexes PROV records; idempotent by document ids derived from span ids."""

    name = "elasticsearch"

    def __init__(
        self,
        url: str,
        *,
        index_prefix: str | None = None,
        api_key: str | None = None,
        api_key_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
        password_file: str | None = None,
        ca_certs: str | None = None,
        ca_fingerprint: str | None = None,
        request_timeout: float = 10.0,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 4.0,
        deadline_s: float = 15.0,
        refresh: str | None = None,
        setup: bool = True,
        client: Elasticsearch | None = None,
    ) -> None:
        url, options = split_options(url, URL_OPTIONS)
        # explicit argument (or ?index_prefix= in the URL) > PINNPROV_ES_INDEX_PREFIX > "pinnprov"
        explicit_prefix = index_prefix if index_prefix is not None else options.get("index_prefix")
        index_prefix = resolve("index_prefix", explicit_prefix, PREFIX_ENV, DEFAULT_PREFIX, validate_prefix)
        ca_certs = ca_certs or options.get("ca_certs")
        if "request_timeout" in options:
            try:
                request_timeout = float(options["request_timeout"])
            except ValueError:
                raise ValueError(f"request_timeout: not a number: {options['request_timeout']!r}") from None
        self.prefix = validate_prefix(index_prefix)
        if max_attempts < 1:
            raise ValueError(f"max_attempts: must be >= 1, got {max_attempts!r}")
        if backoff_s < 0 or max_backoff_s < 0 or deadline_s <= 0:
            raise ValueError("backoff_s, max_backoff_s must be >= 0 and deadline_s > 0")
        self.connection = resolve_connection(
            url, api_key=api_key, api_key_file=api_key_file, username=username, password=password,
            password_file=password_file, ca_certs=ca_certs, ca_fingerprint=ca_fingerprint,
            request_timeout=request_timeout,
        )
        self.client = client if client is not None else build_client(self.connection)
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.deadline_s = deadline_s
        self.refresh = refresh
        self._needs_setup = setup
        self._runs = RunCache(MAX_CACHED_RUNS)
        self._not_found: dict[str, float] = {}  # run id -> monotonic time of the failed lookup
        self._lock = threading.Lock()
        self._closed = False

    # --- contract ---------------------------------------------------------------------------------
    def export(self, batch: Sequence[ProvRecord]) -> ExportResult:
        if not batch:
            return ExportResult(ExportStatus.SUCCESS)
        with self._lock:
            if self._closed:
                return ExportResult(ExportStatus.RETRYABLE, detail="elasticsearch sink is shut down")
            try:
                if self._needs_setup:
                    check_server_version(self.client)
                    install_index_templates(self.client, self.prefix)
                    self._needs_setup = False
                self._learn_runs(batch)
            except Exception as error:  # noqa: BLE001 - the contract: report, never raise
                # Setup failing is never the data's fault (server down, credentials, versions): keep the batch.
                detail = f"index setup failed: {describe_error(error)}"
                log.warning("elasticsearch sink: %s", detail)
                return ExportResult(ExportStatus.RETRYABLE, detail=detail)
            actions: list[tuple[int, BulkAction]] = []
            refused: dict[int, str] = {}
            for position, record in enumerate(batch):
                try:
                    info = (self._runs.get(record.run_id) if record.run_id else None) or RunInfo()
                    action = to_action(record, self.prefix, info)
                    if action is not None:
                        actions.append((position, action))
                except Exception as error:  # noqa: BLE001 - one malformed record must not sink the batch
                    refused[position] = f"cannot build document: {type(error).__name__}: {error}"
            return self._send_all(actions, refused)

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        return True  # nothing is buffered: export returns once Elasticsearch has answered

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            log.debug("closing the Elasticsearch client failed", exc_info=True)

    def setup(self) -> list[str]:
        """Install templates and indices now (the CLI's `pinnprov kibana templates`); raises on failure."""
        with self._lock:
            check_server_version(self.client)
            report = install_index_templates(self.client, self.prefix)
            self._needs_setup = False
            return report

    # --- run identity -----------------------------------------------------------------------------
    def _learn_runs(self, batch: Sequence[ProvRecord]) -> None:
        """Remember run-start identities; fetch the ones this process never saw (e.g. after a restart)."""
        for record in batch:
            if isinstance(record, RunStartRecord):
                self._runs.put(record.run_id, run_info_from_start(record))
                self._not_found.pop(record.run_id, None)
        enriched = EpochRecord | AdaptationRecord | AlertRecord
        now = time.monotonic()
        wanted = {
            r.run_id
            for r in batch
            if isinstance(r, enriched)
            and self._runs.get(r.run_id) is None
            and now - self._not_found.get(r.run_id, -LOOKUP_AGAIN_AFTER_S) >= LOOKUP_AGAIN_AFTER_S
        }
        if not wanted:
            return
        try:
            response = self.client.mget(index=index_name(self.prefix, "runs"), ids=sorted(wanted))
        except Exception as error:  # noqa: BLE001 - enrichment is best effort; the bulk will report outages
            log.info("cannot look up %d run(s) in Elasticsearch: %s", len(wanted), describe_error(error))
            return
        for doc in response.get("docs", []):
            if doc.get("found") and isinstance(doc.get("_source"), dict):
                self._runs.put(str(doc["_id"]), run_info_from_document(doc["_source"]))
                self._not_found.pop(str(doc["_id"]), None)
            else:
                self._not_found[str(doc.get("_id"))] = now
        if len(self._not_found) > MAX_CACHED_RUNS:
            self._not_found.clear()

    # --- bulk with retries ------------------------------------------------------------------------
    def _send_all(self, actions: list[tuple[int, BulkAction]], refused: dict[int, str]) -> ExportResult:
        written, retry_left, problems = 0, 0, []
        for start in range(0, len(actions), MAX_ACTIONS_PER_BULK):
            chunk = actions[start : start + MAX_ACTIONS_PER_BULK]
            chunk_written, chunk_left, problem = self._send(chunk, refused)
            written += chunk_written
            retry_left += chunk_left
            if problem:
                problems.append(problem)
        rejected = tuple(sorted(refused))
        reasons = "; ".join(f"record {i}: {refused[i]}" for i in rejected[:3])
        if retry_left:
            detail = f"{retry_left} document(s) not written: {'; '.join(problems)}"
            return ExportResult(ExportStatus.RETRYABLE, written, detail + (f"; {reasons}" if reasons else ""), rejected)
        if rejected:
            more = f" (and {len(rejected) - 3} more)" if len(rejected) > 3 else ""
            return ExportResult(ExportStatus.REJECTED, written, reasons + more, rejected)
        return ExportResult(ExportStatus.SUCCESS, written)

    def _send(self, chunk: list[tuple[int, BulkAction]], refused: dict[int, str]) -> tuple[int, int, str]:
        """Bulk-write one chunk with retries; returns (written, still retryable, last problem)."""
        pending = chunk
        written, attempt, problem = 0, 0, ""
        delay = self.backoff_s
        deadline = time.monotonic() + self.deadline_s
        while pending:
            attempt += 1
            try:
                response = self.client.bulk(
                    # pre-encoded NDJSON: the client sends bytes as they are, its types list only the sequence form
                    operations=encode_bulk(action for _, action in pending),  # type: ignore[arg-type]
                    refresh=self.refresh,
                    filter_path=BULK_FILTER,
                )
            except Exception as error:  # noqa: BLE001
                problem = describe_error(error)
                if not is_retryable(error):
                    for position, _ in pending:
                        refused[position] = problem
                    return written, 0, ""
            else:
                items = list(response.get("items", []))
                if len(items) != len(pending):
                    problem = f"bulk response has {len(items)} items for {len(pending)} actions"
                else:
                    still: list[tuple[int, BulkAction]] = []
                    for (position, action), item in zip(pending, items, strict=True):
                        result: dict[str, Any] = next(iter(item.values()), {})
                        status = int(result.get("status", 0))
                        if 200 <= status < 300 or (status == 409 and action.op == "create"):
                            written += 1  # 409 on create: a data stream already holds this point (a re-delivery)
                            continue
                        failure = result.get("error") or {}
                        reason = f"{status} {failure.get('type', 'error')}: {str(failure.get('reason', ''))[:200]}"
                        if status == 429 or status >= 500:
                            still.append((position, action))
                            problem = reason
                        else:
                            refused[position] = reason
                    pending = still
            if not pending:
                break
            if attempt >= self.max_attempts or time.monotonic() + delay > deadline:
                break
            time.sleep(delay * random.uniform(0.5, 1.0))  # jitter: collectors retrying in lockstep stay apart
            delay = min(delay * 2, self.max_backoff_s)
        if pending:
            problem = f"after {attempt} attempt(s): {problem}"
            log.warning("elasticsearch sink: %d document(s) still failing %s", len(pending), problem)
        return written, len(pending), problem if pending else ""


__all__ = ["ElasticsearchSink", "install_index_templates", "INDEX_KINDS"]
