"""HTTP faces of the queue: the worker's probes and metrics port, and the dashboard."""
