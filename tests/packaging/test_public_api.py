"""`pinnprov.__all__` is the declared public API: every name resolves, lazily, to what its docs promise."""

from __future__ import annotations

import inspect

import pytest

import pinnprov


@pytest.mark.parametrize("name", sorted(set(pinnprov.__all__) - {"__version__"}))
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(pinnprov, name)
    assert value is not None
    assert inspect.getmodule(value) is not None
    assert name in dir(pinnprov)


def test_all_lists_exactly_the_lazy_names() -> None:
    assert set(pinnprov.__all__) - {"__version__"} == set(pinnprov._PUBLIC)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pinnprov.nope  # type: ignore[attr-defined]  # noqa: B018


def test_the_public_api_reads_a_store(tmp_path) -> None:
    """The module docstring's example, against a real SQLite store written through the collector's own pipeline."""
    from prov_builders import request_for, run_id, sample_run, write_store

    path = tmp_path / "prov.db"
    write_store(path, request_for(sample_run(1, epochs=5)))
    with pinnprov.open_store(f"sqlite:///{path}") as store:
        latest = pinnprov.resolve_run(store, "latest")
        table1 = pinnprov.run_query(store, "epochs", pinnprov.QueryOptions(run_id=latest, every=1))
        document = pinnprov.export_run(store, latest, "provn")
    assert latest == run_id(1)
    assert len(table1.rows) == 5 and "loss" in table1.columns
    assert document.startswith("document") and latest in document
