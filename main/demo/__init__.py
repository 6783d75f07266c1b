"""The resumable-jobs demo: seed data, run, interrupt, inspect, compare, verify. Driven by `jobqueue demo`."""
