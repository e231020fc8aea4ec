"""Sinks: where PROV records go (SQLite, MonetDB, Elasticsearch), chosen by name from `SINKS`."""
