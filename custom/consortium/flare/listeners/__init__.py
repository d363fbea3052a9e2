"""FLARE listeners at the server: the round records' progress file and the Prometheus exporter."""
