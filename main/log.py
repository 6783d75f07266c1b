"""structlog set-up: console lines on a terminal, JSON lines when asked (or, with "auto", off a terminal).

Logs go to stderr, always: stdout belongs to a command's output and to the programs that embed the queue.
A job's id, type and attempt are bound in context variables for the length of its run, so every log line
written inside a job (yours, a library's through structlog) carries them.
"""

import logging
import sys
from typing import Literal

import structlog

LogFormat = Literal["auto", "console", "json"]


def configure_logging(log_format: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog for a worker or CLI process. Libraries importing jobqueue are left alone."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if use_json else structlog.processors.StackInfoRenderer(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(**context: object) -> structlog.typing.FilteringBoundLogger:
    """jobqueue's logger. Where the program has not configured structlog, lines still go to stderr (structlog's
    own default would print to stdout), with the job context merged in."""
    if structlog.is_configured():
        return structlog.get_logger("jobqueue").bind(**context)
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.dev.ConsoleRenderer(colors=False)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    ).bind(**context)
