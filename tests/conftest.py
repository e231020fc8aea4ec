"""Shared pytest setup."""

pytest_plugins = ["monetdb_server"]  # a real MonetDB for the MonetDB tests (tests/monetdb_server.py)
