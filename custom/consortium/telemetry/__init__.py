"""Consortium telemetry: a round record mapped onto Prometheus series (metadata only), the
exporter that serves them, and the Prometheus configuration of the POC. No FLARE import."""
