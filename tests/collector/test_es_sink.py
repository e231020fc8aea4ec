"""The Elasticsearch sink through the real `elasticsearch` client against a loopback HTTP server.

Covers: template install (idempotent), exact bulk requests, idempotent ids, retries on 429/5xx with only
the failed documents re-sent, partial failures reported per record, run identity after a restart,
start/end in either order, credentials and the 8.x/9.x version mismatch.
"""

from __future__ import annotations

import json

import pytest
from fake_elasticsearch import CLIENT_MAJOR, OTHER_MAJOR, FakeElasticsearch, FakeState
from test_es_documents import RUN, end_record, epoch_record, start_record

from pinnprov.collector.sinks.elasticsearch import ElasticsearchSink
from pinnprov.store.records import AlertRecord
from pinnprov.store.sink import SINKS, ExportStatus


def make_sink(url: str, **options: object) -> ElasticsearchSink:
    options = {"backoff_s": 0.01, "max_backoff_s": 0.02, **options}
    return ElasticsearchSink(url, **options)  # type: ignore[arg-type]


def test_registered_by_name() -> None:
    assert SINKS.get("elasticsearch") is ElasticsearchSink


def test_first_export_installs_templates_and_indices_once() -> None:
    with FakeElasticsearch() as es:
        sink = make_sink(es.url)
        result = sink.export([start_record()])
        assert result.ok, result.detail
        assert sorted(es.state.templates) == ["pinnprov-adaptations", "pinnprov-alerts", "pinnprov-epochs",
                                              "pinnprov-metrics", "pinnprov-runs"]
        template = es.state.templates["pinnprov-epochs"]
        assert template["index_patterns"] == ["pinnprov-epochs"] and template["priority"] == 500
        assert template["template"]["mappings"]["properties"]["loss"] == {"type": "double"}
        assert set(es.state.indices) == set(es.state.templates)
        puts = [r for r in es.state.requests if r.path.startswith("/_index_template/")]
        assert [r.method for r in puts] == ["PUT"] * 5
        sink.export([epoch_record(0)])
        assert len([r for r in es.state.requests if r.path.startswith("/_index_template/")]) == 5
        sink.shutdown()
        # A second collector start re-applies everything without error (existing indices get mapping PUTs).
        again = make_sink(es.url)
        assert again.setup()[0] == "pinnprov-runs: template updated, mapping of existing index updated"
        again.shutdown()


def test_bulk_request_is_exactly_what_the_client_sends() -> None:
    with FakeElasticsearch() as es:
        sink = make_sink(es.url, setup=False)
        assert sink.export([start_record(), epoch_record(0), epoch_record(1)]).ok
        (bulk,) = es.state.bulk_requests()
        assert bulk.method in ("POST", "PUT") and bulk.path == "/_bulk"
        assert bulk.headers["content-type"] == f"application/vnd.elasticsearch+x-ndjson; compatible-with={CLIENT_MAJOR}"
        assert bulk.query["filter_path"] == ["errors,items.*.status,items.*.error.type,items.*.error.reason"]
        lines = bulk.ndjson()
        assert [next(iter(line)) for line in lines[0::2]] == ["update", "index", "index"]
        assert lines[2] == {"index": {"_index": "pinnprov-epochs", "_id": f"{RUN}-0000000000000001"}}
        assert lines[3]["run_name"] == "adam-tanh"  # learnt from the start record in the same batch
        assert bulk.body.endswith(b"\n")


def test_redelivery_never_duplicates() -> None:
    with FakeElasticsearch() as es:
        sink = make_sink(es.url)
        batch = [start_record(), *[epoch_record(epoch) for epoch in range(5)]]
        assert sink.export(batch).written == 6
        assert sink.export(batch).written == 6
        assert len(es.state.indices["pinnprov-epochs"]["docs"]) == 5
        assert len(es.state.indices["pinnprov-runs"]["docs"]) == 1


def test_start_and_end_merge_in_either_order() -> None:
    with FakeElasticsearch() as es:
        sink = make_sink(es.url)
        assert sink.export([end_record()]).ok
        assert sink.export([start_record()]).ok  # late start: must not reopen the run
        doc = es.state.indices["pinnprov-runs"]["docs"][RUN]
        assert doc["status"] == "completed" and doc["optimizer"] == "adam" and doc["summary"]["r2"] == 0.52
        other = "1" * 32
        assert sink.export([start_record(other, name="rms")]).ok
        assert es.state.indices["pinnprov-runs"]["docs"][other]["status"] == "running"
        assert sink.export([end_record(other)]).ok
        assert es.state.indices["pinnprov-runs"]["docs"][other]["status"] == "completed"


def test_whole_request_429_and_503_are_retried_with_backoff() -> None:
    with FakeElasticsearch(FakeState(fail_requests=[429, 503])) as es:
        sink = make_sink(es.url, setup=False)
        result = sink.export([epoch_record(0), epoch_record(1)])
        assert result.ok and result.written == 2
        assert len(es.state.bulk_requests()) == 3


def test_persistent_unavailability_is_retryable_after_max_attempts() -> None:
    with FakeElasticsearch(FakeState(fail_requests=[503] * 10)) as es:
        sink = make_sink(es.url, setup=False, max_attempts=3)
        result = sink.export([epoch_record(0)])
        assert result.status is ExportStatus.RETRYABLE
        assert "after 3 attempt(s)" in result.detail and "503" in result.detail
        assert len(es.state.bulk_requests()) == 3


def test_only_the_documents_that_got_429_are_resent() -> None:
    seen: dict[str, int] = {}

    def reject_once(index: str, doc_id: str, source: dict) -> int | None:
        if doc_id.endswith("0000000000000002"):
            seen[doc_id] = seen.get(doc_id, 0) + 1
            return 429 if seen[doc_id] == 1 else None
        return None

    with FakeElasticsearch(FakeState(item_failures=reject_once)) as es:
        sink = make_sink(es.url, setup=False)
        result = sink.export([epoch_record(0), epoch_record(1), epoch_record(2)])
        assert result.ok and result.written == 3
        first, second = es.state.bulk_requests()
        assert len(first.ndjson()) == 6 and len(second.ndjson()) == 2
        assert second.ndjson()[0]["index"]["_id"] == f"{RUN}-0000000000000002"


def test_permanent_document_failures_are_reported_by_batch_index() -> None:
    bad = AlertRecord(alert_id="x" * 32, rule="r", run_id=RUN, epoch="twelve", at=1.0, metric="loss",  # type: ignore[arg-type]
                      value=1.0, threshold=0.5)
    with FakeElasticsearch() as es:
        sink = make_sink(es.url)
        result = sink.export([epoch_record(0), bad, epoch_record(1)])
        assert result.status is ExportStatus.REJECTED
        assert list(result.rejected) == [1] and result.written == 2
        assert "400 document_parsing_exception" in result.detail and "epoch" in result.detail


def test_mixed_permanent_and_retryable_failures_keep_the_batch() -> None:
    def fail(index: str, doc_id: str, source: dict) -> int | None:
        return {f"{RUN}-0000000000000001": 400, f"{RUN}-0000000000000002": 503}.get(doc_id)

    with FakeElasticsearch(FakeState(item_failures=fail)) as es:
        sink = make_sink(es.url, setup=False, max_attempts=2)
        result = sink.export([epoch_record(0), epoch_record(1)])
        assert result.status is ExportStatus.RETRYABLE
        assert list(result.rejected) == [0] and result.written == 0
        assert len(es.state.bulk_requests()) == 2 and len(es.state.bulk_requests()[1].ndjson()) == 2


def test_run_identity_is_fetched_after_a_restart() -> None:
    with FakeElasticsearch() as es:
        first = make_sink(es.url)
        assert first.export([start_record()]).ok
        first.shutdown()
        restarted = make_sink(es.url)
        assert restarted.export([epoch_record(4)]).ok
        mgets = [r for r in es.state.requests if r.path.endswith("/_mget")]
        assert len(mgets) == 1 and json.loads(mgets[0].body) == {"ids": [RUN]}
        doc = es.state.indices["pinnprov-epochs"]["docs"][f"{RUN}-0000000000000005"]
        assert (doc["run_name"], doc["optimizer"], doc["activation"]) == ("adam-tanh", "adam", "tanh")
        assert restarted.export([epoch_record(5)]).ok
        assert len([r for r in es.state.requests if r.path.endswith("/_mget")]) == 1  # cached


def test_unreachable_server_is_retryable_and_never_raises() -> None:
    with FakeElasticsearch() as es:
        url = es.url
    sink = make_sink(url, max_attempts=2, request_timeout=2.0)
    result = sink.export([epoch_record(0)])
    assert result.status is ExportStatus.RETRYABLE and "setup failed" in result.detail


def test_api_key_from_the_environment_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINNPROV_ES_API_KEY", "c2VjcmV0LWtleQ==")
    with FakeElasticsearch(FakeState(api_key="c2VjcmV0LWtleQ==")) as es:
        assert make_sink(es.url).export([epoch_record(0)]).ok
        assert all(r.headers["authorization"] == "ApiKey c2VjcmV0LWtleQ==" for r in es.state.requests)


def test_password_from_a_file_and_wrong_password_is_a_clear_retryable_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    secret = tmp_path / "es-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    monkeypatch.setenv("PINNPROV_ES_USERNAME", "pinnprov")
    monkeypatch.setenv("PINNPROV_ES_PASSWORD_FILE", str(secret))
    with FakeElasticsearch(FakeState(basic=("pinnprov", "s3cret"))) as es:
        assert make_sink(es.url).export([epoch_record(0)]).ok
    with FakeElasticsearch(FakeState(basic=("pinnprov", "other"))) as es:
        result = make_sink(es.url).export([epoch_record(0)])
        assert result.status is ExportStatus.RETRYABLE
        assert "authentication failed (401)" in result.detail


def test_server_of_another_major_explains_the_fix_and_keeps_the_data() -> None:
    with FakeElasticsearch(FakeState(server_major=OTHER_MAJOR)) as es:
        result = make_sink(es.url).export([epoch_record(0)])
        assert result.status is ExportStatus.RETRYABLE
        assert f"pip install 'elasticsearch>={OTHER_MAJOR},<{OTHER_MAJOR + 1}'" in result.detail


def test_bad_configuration_fails_at_start_naming_the_problem() -> None:
    with pytest.raises(ValueError, match="credentials in the URL are refused"):
        ElasticsearchSink("http://elastic:changeme@127.0.0.1:9200")
    with pytest.raises(ValueError, match="index_prefix"):
        ElasticsearchSink("http://127.0.0.1:9200", index_prefix="Upper")
    with pytest.raises(ValueError, match="max_attempts"):
        ElasticsearchSink("http://127.0.0.1:9200", max_attempts=0)


def test_prefix_and_options_from_the_store_url_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pinnprov.collector.sinks import open_sink

    with FakeElasticsearch() as es:
        host = es.url.removeprefix("http://")
        sink = open_sink(f"elasticsearch+http://{host}?index_prefix=g5k&request_timeout=3")
        assert isinstance(sink, ElasticsearchSink) and sink.prefix == "g5k"
        assert sink.connection.request_timeout == 3.0
        assert sink.export([epoch_record(0)]).ok and "g5k-epochs" in es.state.indices
        monkeypatch.setenv("PINNPROV_ES_INDEX_PREFIX", "fromenv")
        assert ElasticsearchSink(f"es://{host}").prefix == "fromenv"
        assert ElasticsearchSink(f"es://{host}?index_prefix=url").prefix == "url"  # explicit beats environment
        assert ElasticsearchSink(es.url, index_prefix="arg").prefix == "arg"
    with pytest.raises(ValueError, match="option 'shards' is not known"):
        ElasticsearchSink("http://127.0.0.1:9200?shards=3")
    monkeypatch.setenv("PINNPROV_ES_INDEX_PREFIX", "Bad")
    with pytest.raises(ValueError, match="PINNPROV_ES_INDEX_PREFIX: invalid value 'Bad'"):
        ElasticsearchSink("http://127.0.0.1:9200")


def test_cli_installs_templates_idempotently(capsys: pytest.CaptureFixture[str]) -> None:
    from pinnprov.cli import main

    with FakeElasticsearch() as es:
        assert main(["kibana", "templates", "--es-url", es.url, "--index-prefix", "g5k"]) == 0
        assert "g5k-epochs: template installed, index created" in capsys.readouterr().out
        assert main(["kibana", "templates", "--es-url", es.url, "--index-prefix", "g5k"]) == 0
        assert "g5k-epochs: template updated, mapping of existing index updated" in capsys.readouterr().out
        assert sorted(es.state.indices) == ["g5k-adaptations", "g5k-alerts", "g5k-epochs", "g5k-metrics", "g5k-runs"]
    with FakeElasticsearch(FakeState(server_major=OTHER_MAJOR)) as es:
        assert main(["kibana", "templates", "--es-url", es.url]) == 2
        assert f"pip install 'elasticsearch>={OTHER_MAJOR},<{OTHER_MAJOR + 1}'" in capsys.readouterr().err


def test_pipeline_with_alert_rules_writes_epochs_and_alerts_from_real_otlp_requests() -> None:
    from prov_builders import run_id
    from test_alerts_engine import requests, run_spec

    from pinnprov.collector.alerts import AlertEngine, alert_id, load_rules
    from pinnprov.collector.pipeline import Pipeline

    engine = AlertEngine(load_rules([{"name": "hi", "kind": "threshold", "metric": "loss", "threshold": 0.1,
                                      "actions": []}]))
    with FakeElasticsearch() as es:
        pipeline = Pipeline([make_sink(es.url)], processors=[engine])
        for request in requests(run_spec(7, [1.0, 0.01, 0.02, 1.0], ended=True)):
            assert pipeline.handle_traces(request).ok
        docs = es.state.indices
        assert len(docs["pinnprov-epochs"]["docs"]) == 4
        alerts = docs["pinnprov-alerts"]["docs"]
        assert sorted(alerts) == sorted(alert_id("hi", run_id(7), epoch) for epoch in (0, 3))
        alert = alerts[alert_id("hi", run_id(7), 3)]
        assert (alert["run_name"], alert["epoch"], alert["value"], alert["threshold"]) == ("run-7", 3, 1.0, 0.1)
        assert docs["pinnprov-runs"]["docs"][run_id(7)]["status"] == "completed"
        pipeline.shutdown()
    engine.close()
