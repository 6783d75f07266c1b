"""Prometheus metrics and health probes: instruments fed by the lifecycle events, the queues' state read at
scrape time, and the HTTP answers of `jobqueue worker --metrics-port`."""
