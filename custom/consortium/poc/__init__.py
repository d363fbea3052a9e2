"""The local POC consortium: its state and processes, start and stop, the admin session, the one
running-POC check, the sites' data, Prometheus.
"""
