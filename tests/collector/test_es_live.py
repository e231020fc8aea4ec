"""Against a real Elasticsearch, when PINNPROV_TEST_ELASTICSEARCH_URL is set (credentials from PINNPROV_ES_*).

Each test uses its own index prefix and removes its indices and templates afterwards.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator

import pytest
from test_es_documents import RUN, end_record, epoch_record, start_record

from pinnprov.collector.sinks.elasticsearch import ElasticsearchSink
from pinnprov.core.es_indices import INDEX_KINDS, index_name

URL = os.environ.get("PINNPROV_TEST_ELASTICSEARCH_URL", "")
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not URL, reason="set PINNPROV_TEST_ELASTICSEARCH_URL to run against a real Elasticsearch"),
]


@pytest.fixture
def sink() -> Iterator[ElasticsearchSink]:
    prefix = f"pinnprov-test-{uuid.uuid4().hex[:8]}"
    sink = ElasticsearchSink(URL, index_prefix=prefix, refresh="wait_for")
    yield sink
    for kind in INDEX_KINDS:
        name = index_name(prefix, kind)
        sink.client.options(ignore_status=404).indices.delete(index=name)
        sink.client.options(ignore_status=404).indices.delete_index_template(name=name)
    sink.shutdown()


def test_templates_install_idempotently_with_explicit_mappings(sink: ElasticsearchSink) -> None:
    first = sink.setup()
    second = sink.setup()
    assert len(first) == len(second) == 4
    mapping = sink.client.indices.get_mapping(index=index_name(sink.prefix, "epochs"))
    properties = next(iter(mapping.body.values()))["mappings"]["properties"]
    assert properties["loss"]["type"] == "double" and properties["run_name"]["type"] == "keyword"


def test_documents_are_indexed_once_and_merged(sink: ElasticsearchSink) -> None:
    batch = [start_record(), *[epoch_record(e, loss=1.0 / (e + 1)) for e in range(20)], epoch_record(20, math.nan)]
    assert sink.export(batch).ok
    assert sink.export(batch).ok  # re-delivery
    assert sink.export([end_record()]).ok
    epochs = index_name(sink.prefix, "epochs")
    assert sink.client.count(index=epochs)["count"] == 21
    run = sink.client.get(index=index_name(sink.prefix, "runs"), id=RUN)["_source"]
    assert run["status"] == "completed" and run["optimizer"] == "adam"
    query = {"term": {"run_name": "adam-tanh"}}
    latest = sink.client.search(index=epochs, size=1, sort=[{"epoch": "desc"}], query=query)
    hit = latest["hits"]["hits"][0]["_source"]
    assert hit["epoch"] == 20 and hit["non_finite"] == ["loss"] and "loss" not in hit


def test_mapping_errors_come_back_per_document(sink: ElasticsearchSink) -> None:
    from pinnprov.store.records import AlertRecord

    bad = AlertRecord(alert_id="z" * 32, rule="r", run_id=RUN, epoch="x", at=1.0, metric="loss",  # type: ignore[arg-type]
                      value=1.0, threshold=0.5)
    result = sink.export([epoch_record(0), bad])
    assert list(result.rejected) == [1] and result.written == 1
