"""The fake Elasticsearch server (tests/support/fake_elasticsearch.py) answers the real client like a real one."""

from __future__ import annotations

import pytest
from fake_elasticsearch import CLIENT_MAJOR, NEWER_MAJOR, OTHER_MAJOR, FakeElasticsearch, FakeState, _negotiate


def test_real_client_accepts_the_fake_and_sends_the_compatibility_header() -> None:
    from elasticsearch import Elasticsearch

    with FakeElasticsearch() as es:
        client = Elasticsearch(es.url, max_retries=0)
        assert client.info()["version"]["number"].startswith(f"{CLIENT_MAJOR}.")
        accept = es.state.requests[-1].headers["accept"]
        assert f"compatible-with={CLIENT_MAJOR}" in accept
        client.close()


def test_fake_negotiates_versions_like_rest_compatible_version_helper() -> None:
    accept = "application/vnd.elasticsearch+json; compatible-with={}"
    assert _negotiate(9, accept.format(9), accept.format(9), True) is None
    assert _negotiate(9, accept.format(8), accept.format(8), True) is None  # N-1: REST compatibility
    assert _negotiate(9, "application/json", None, False) is None  # no version asked: the current one
    refused = _negotiate(8, accept.format(9), accept.format(9), True)
    assert refused is not None and refused["error"]["type"] == "media_type_header_exception"
    assert refused["error"]["caused_by"]["reason"].startswith("Accept version must be either version 8 or 7, but "
                                                             "found 9. Accept=")
    mixed = _negotiate(9, accept.format(8), accept.format(9), True)
    assert mixed is not None and "must match" in mixed["error"]["caused_by"]["reason"]


def test_real_client_of_the_previous_major_works_through_compatibility() -> None:
    from elasticsearch import Elasticsearch

    with FakeElasticsearch(FakeState(server_major=NEWER_MAJOR)) as es:
        client = Elasticsearch(es.url, max_retries=0)
        assert client.info()["version"]["number"].startswith(f"{NEWER_MAJOR}.")
        client.close()


def test_fake_of_another_major_refuses_the_client_like_a_real_one() -> None:
    from elasticsearch import BadRequestError, Elasticsearch

    with FakeElasticsearch(FakeState(server_major=OTHER_MAJOR)) as es:
        client = Elasticsearch(es.url, max_retries=0)
        with pytest.raises(BadRequestError, match="media_type_header_exception"):
            client.info()
        client.close()
