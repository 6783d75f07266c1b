"""One settings object, read from JOBQUEUE_* environment variables.

Every knob the queue has lives here and in the table in docs/JOB_SYSTEM_QUICK_REFERENCE.md. Durations take
seconds as a number (``0.05``) or with a unit (``250ms``, ``30s``, ``10m``, ``12h``, ``7d``).
"""

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from main.errors import SettingsError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds from ``5``, ``0.5``, ``"250ms"``, ``"10m"``, ``"7d"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected seconds like 5 or 0.05, or a duration like 250ms, 10m, 7d; got {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Settings(BaseSettings):
    """Configuration of one jobqueue process. Construct with keyword arguments in tests."""

    model_config = SettingsConfigDict(env_prefix="JOBQUEUE_", frozen=True, extra="forbid")

    database_url: str = "sqlite:///jobqueue.db"
    poll_interval: Duration = Field(5.0, ge=0.001)
    concurrency: int = Field(5, ge=1, le=1000)
    queues: Annotated[tuple[str, ...], NoDecode] = ()
    lease_seconds: Duration = Field(30.0, ge=0.1)
    heartbeat_interval: Duration | None = Field(None, ge=0.01)  # None: the poll interval, at most lease/3
    shutdown_timeout: Duration = Field(30.0, ge=0)
    retention: Duration = Field(7 * 86400.0, ge=0)
    cleanup_interval: Duration = Field(600.0, ge=0.01)
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    jobs_module: str = "main.jobs"

    @field_validator("queues", mode="before")
    @classmethod
    def _split_queues(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("database_url")
    @classmethod
    def _has_scheme(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(f"expected a URL such as sqlite:///jobqueue.db or postgresql://host/db; got {value!r}")
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

    @property
    def effective_heartbeat_interval(self) -> float:
        """Seconds between lease renewals (and between looks for cancel requests from other processes):
        JOBQUEUE_HEARTBEAT_INTERVAL, or the poll interval, at most a third of the lease."""
        if self.heartbeat_interval is not None:
            return self.heartbeat_interval
        return min(self.poll_interval, self.lease_seconds / 3)

    @classmethod
    def load(cls, **overrides: Any) -> "Settings":
        """Read the environment, overridden by keyword arguments. A bad value raises SettingsError naming
        the variable."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            problems = "; ".join(
                f"JOBQUEUE_{str(err['loc'][0]).upper()}: {err['msg']}" if err["loc"] else err["msg"]
                for err in exc.errors()
            )
            raise SettingsError(f"invalid jobqueue settings: {problems}") from None
