"""OTLP receivers (gRPC and HTTP) and the intake they share: validate, spool durably, then acknowledge."""
