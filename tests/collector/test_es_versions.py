"""Client major vs server major, the product check and mapping conflicts: the branches of the sink that
depend on how a real Elasticsearch answers (the fake answers with the real shapes, see test_es_fake.py)."""

from __future__ import annotations

import logging
import sys

import pytest
from fake_elasticsearch import CLIENT_MAJOR, NEWER_MAJOR, OTHER_MAJOR, FakeElasticsearch, FakeState
from test_es_documents import epoch_record, start_record

from pinnprov.collector.sinks.elasticsearch import ElasticsearchSink
from pinnprov.store.sink import ExportStatus


def make_sink(url: str, **options: object) -> ElasticsearchSink:
    return ElasticsearchSink(url, backoff_s=0.01, max_backoff_s=0.02, **options)  # type: ignore[arg-type]


def test_an_older_server_refuses_the_client_and_the_sink_names_the_extra_to_install() -> None:
    with FakeElasticsearch(FakeState(server_major=OTHER_MAJOR)) as es:
        result = make_sink(es.url).export([epoch_record(0)])
    assert result.status is ExportStatus.RETRYABLE  # a deployment problem: the data is kept
    assert f"the server is another major version ({OTHER_MAJOR}.x)" in result.detail
    if OTHER_MAJOR in (8, 9):
        assert f"pip install 'pinnprov[es{OTHER_MAJOR}]'" in result.detail
    else:
        assert "supports and tests Elasticsearch 8.x and 9.x only" in result.detail


def test_a_newer_server_accepts_the_client_through_compatibility_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), FakeElasticsearch(FakeState(server_major=NEWER_MAJOR)) as es:
        sink = make_sink(es.url)
        assert sink.export([start_record(), epoch_record(0)]).ok
        accepts = {r.headers["accept"] for r in es.state.requests}
        assert accepts == {f"application/vnd.elasticsearch+json; compatible-with={CLIENT_MAJOR}"}
        sink.shutdown()
    warning = next(r.getMessage() for r in caplog.records if "REST compatibility" in r.getMessage())
    assert f"Elasticsearch {NEWER_MAJOR}.1.0 is talking to the {CLIENT_MAJOR}.x client" in warning
    if NEWER_MAJOR in (8, 9):
        assert f"pinnprov[es{NEWER_MAJOR}]" in warning


def test_a_server_that_is_not_elasticsearch_is_named_so() -> None:
    with FakeElasticsearch(FakeState(product_header=False)) as es:
        result = make_sink(es.url).export([epoch_record(0)])
    assert result.status is ExportStatus.RETRYABLE
    assert "is not Elasticsearch (no X-Elastic-Product header)" in result.detail


def test_an_existing_index_with_a_conflicting_mapping_keeps_it_and_ingestion_goes_on() -> None:
    with FakeElasticsearch() as es:
        es.state.indices["pinnprov-epochs"] = {"mappings": {"properties": {"loss": {"type": "keyword"}}}, "docs": {}}
        sink = make_sink(es.url)
        report = sink.setup()
        line = next(entry for entry in report if entry.startswith("pinnprov-epochs"))
        assert "existing mapping incompatible" in line
        assert "mapper [loss] cannot be changed from type [keyword] to [double]" in line
        assert es.state.indices["pinnprov-epochs"]["mappings"]["properties"]["loss"] == {"type": "keyword"}
        assert sink.export([epoch_record(0)]).ok  # the other fields still index
        sink.shutdown()


def test_without_a_client_the_sink_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "elasticsearch", None)  # what `import elasticsearch` meets when absent
    with pytest.raises(ValueError, match=r"pip install 'pinnprov\[es9\]' for Elasticsearch 9.x or "
                                         r"'pinnprov\[es8\]' for 8.x"):
        ElasticsearchSink("http://127.0.0.1:9200")
