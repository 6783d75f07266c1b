"""One settings object, read from JOBQUEUE_* environment variables.

Every knob the queue has lives here and in the table in docs/JOB_SYSTEM_QUICK_REFERENCE.md. Durations take
seconds as a number (``0.05``) or with a unit (``250ms``, ``30s``, ``10m``, ``12h``, ``7d``).
"""

import difflib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy import URL, make_url
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.exc import ArgumentError

from main.base.jobs.routing import queue_problem
from main.durations import parse_duration
from main.errors import SettingsError

Duration = Annotated[float, BeforeValidator(parse_duration)]
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class Settings(BaseSettings):
    """Configuration of one jobqueue process. Construct with keyword arguments in tests."""

    model_config = SettingsConfigDict(env_prefix="JOBQUEUE_", frozen=True, extra="forbid")

    database_url: str = "sqlite:///jobqueue.db"
    poll_interval: Duration = Field(5.0, ge=0.001)
    concurrency: int = Field(5, ge=1, le=1000)
    pool_size: int = Field(10, ge=1, le=1000)
    transaction_pooler: bool = False  # PostgreSQL reached through PgBouncer (or alike) in transaction mode
    queues: Annotated[tuple[str, ...], NoDecode] = ()
    lease_seconds: Duration = Field(30.0, ge=0.1)
    heartbeat_interval: Duration | None = Field(None, ge=0.01)  # None: the poll interval, at most lease/3
    shutdown_timeout: Duration = Field(30.0, ge=0)
    retention: Duration = Field(7 * 86400.0, ge=0)
    cleanup_interval: Duration = Field(600.0, ge=0.01)
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    jobs_module: str = "main.jobs"
    metrics_port: int | None = Field(None, ge=0, le=65535)  # `jobqueue worker` serves /metrics, /healthz, /readyz
    metrics_host: str = "0.0.0.0"
    dashboard_token: SecretStr | None = None  # required to serve the dashboard on anything but a loopback address
    dashboard_read_only: bool = False  # viewers only: no retry, cancel or pause, and no buttons for them
    otel: bool = False  # trace jobs with OpenTelemetry from the command line (main/tracing.py; the otel extra)

    @field_validator("queues", mode="before")
    @classmethod
    def _split_queues(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for queue in value:
            if problem := queue_problem("each queue name", queue):
                raise ValueError(problem)
        return value

    @field_validator("jobs_module")
    @classmethod
    def _module_name(cls, value: str) -> str:
        if not _MODULE_NAME.fullmatch(value):
            raise ValueError(f"expected a module to import, such as myapp.jobs; got {value!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _usable_url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(f"expected a URL such as sqlite:///jobqueue.db or postgresql://host/db; got {value!r}")
        try:
            url = make_url(value)
            url.port  # noqa: B018  (parsed lazily: a port that is not a number fails here)
        except (ArgumentError, ValueError):
            raise ValueError(f"cannot parse {mask_password(value)!r} as a database URL") from None
        if url.get_backend_name() == "sqlite":
            _check_sqlite_url(url, value)
        return value

    @model_validator(mode="after")
    def _heartbeat_well_inside_the_lease(self) -> "Settings":
        if self.heartbeat_interval is not None and self.heartbeat_interval > self.lease_seconds / 2:
            raise ValueError(
                f"JOBQUEUE_HEARTBEAT_INTERVAL ({self.heartbeat_interval:g}s) must be at most half of "
                f"JOBQUEUE_LEASE_SECONDS ({self.lease_seconds:g}s), so that one late beat does not let a healthy "
                "job's lease expire; shorten the interval or lengthen the lease"
            )
        return self

    @model_validator(mode="after")
    def _pooler_for_postgresql(self) -> "Settings":
        if self.transaction_pooler and make_url(self.database_url).get_backend_name() == "sqlite":
            raise ValueError(
                "JOBQUEUE_TRANSACTION_POOLER is for PostgreSQL behind PgBouncer in transaction mode; SQLite is a "
                "file with no pooler in front of it: unset it, or point JOBQUEUE_DATABASE_URL at PostgreSQL"
            )
        return self

    @property
    def effective_heartbeat_interval(self) -> float:
        """Seconds between lease renewals (and between looks for cancel requests from other processes):
        JOBQUEUE_HEARTBEAT_INTERVAL, or the poll interval, at most a third of the lease."""
        if self.heartbeat_interval is not None:
            return self.heartbeat_interval
        return min(self.poll_interval, self.lease_seconds / 3)

    @classmethod
    def unknown_variables(cls, environ: Mapping[str, str]) -> dict[str, str | None]:
        """JOBQUEUE_* variables that name no setting (a misspelling is silently ignored otherwise), each with
        the closest real name, if any."""
        known = [f"JOBQUEUE_{name.upper()}" for name in cls.model_fields]
        return {name: next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.8)), None)
                for name in environ if name.startswith("JOBQUEUE_") and name not in known}

    @classmethod
    def load(cls, **overrides: Any) -> "Settings":
        """Read the environment, overridden by keyword arguments. A bad value raises SettingsError naming
        the variable."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            problems = "; ".join(
                f"JOBQUEUE_{str(err['loc'][0]).upper()}: {err['msg'].removeprefix('Value error, ')}"
                if err["loc"] else err["msg"].removeprefix("Value error, ")
                for err in exc.errors()
            )
            raise SettingsError(f"invalid jobqueue settings: {problems}") from None


# What SQLAlchemy's SQLite driver takes from a URL's query; the others are SQLite's own URI options (uri=true).
_SQLITE_OPTIONS = {"timeout", "check_same_thread", "isolation_level", "detect_types", "cached_statements", "uri"}


def _check_sqlite_url(url: URL, value: str) -> None:
    if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
        raise ValueError(
            f"{value!r} is an in-memory database, which no other process (worker, CLI) can see and which "
            "vanishes with this one; use a file, e.g. sqlite:///jobqueue.db"
        )
    unknown = sorted(set(url.query) - _SQLITE_OPTIONS) if url.query.get("uri") != "true" else []
    if unknown:
        raise ValueError(f"unknown option {', '.join(unknown)} in {value!r}; SQLite takes "
                         f"{', '.join(sorted(_SQLITE_OPTIONS))} (and its URI options, with uri=true)")
    try:
        SQLiteDialect_pysqlite().create_connect_args(url)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"bad option in {value!r}: {exc}") from None


def mask_password(database_url: str) -> str:
    """The URL with its password replaced by ***, even where the rest of it does not parse."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", database_url)
