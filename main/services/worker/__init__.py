"""The worker engine: producer, executor, completer, heartbeat and maintenance, assembled by Worker."""

from main.services.worker.worker import Worker

__all__ = ["Worker"]
