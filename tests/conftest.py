"""Shared pytest setup."""

pytest_plugins = ["monetdb_server", "store_urls"]  # a real MonetDB for the MonetDB tests; store_url over both dialects
