"""The collector: OTLP in, W3C PROV out (SQLite, MonetDB, Elasticsearch). Never imports TensorFlow."""
