"""structlog set-up: console lines on a terminal, JSON lines when asked (or, with "auto", off a terminal).

Logs go to stderr, always: stdout belongs to a command's output and to the programs that embed the queue.
A job's id, type and attempt are bound in context variables for the length of its run, so every log line
written inside a job (yours, a library's through structlog) carries them.
"""

import logging
import os
import sys
import threading
from typing import Literal, TextIO

import structlog

LogFormat = Literal["auto", "console", "json"]


def configure_logging(log_format: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog for a worker or CLI process. Libraries importing jobqueue are left alone."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer = (structlog.processors.JSONRenderer() if use_json
                else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))  # no ANSI codes in files and pipes
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if use_json else structlog.processors.StackInfoRenderer(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=lambda *_: LineLogger(sys.stderr),
        cache_logger_on_first_use=True,
    )


class LineLogger:
    """structlog's PrintLogger, except that each line reaches the file in one write: processes that share a
    stderr (a supervisor and its workers, or a log file given to several) never splice their lines together."""

    def __init__(self, file: TextIO) -> None:
        self._file = file
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        line = message + "\n"
        with self._lock:
            try:
                fd = self._file.fileno()
            except (AttributeError, OSError, ValueError):  # not a real file (captured by a test, a StringIO)
                self._file.write(line)
                self._file.flush()
                return
            self._file.flush()  # what others wrote through the Python buffer goes first
            data = line.encode(errors="backslashreplace")
            while data:
                data = data[os.write(fd, data):]

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


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
