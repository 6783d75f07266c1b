"""Every user or environment mistake on the command line is one `error:` line and exit 1, never a traceback
(issue 9, points 5-7 and 9). Most run the CLI in this process, for speed; the worker's run as real processes."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from __tests__.test_cli import ROOT, run_cli
from main.cli import main
from main.db import schema
from main.services.job_queue import JobQueue, reset_job_queue


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database_url: str, *args: str,
        stdin: str | None = None, **env: str) -> tuple[int, str, str]:
    """Run `jobqueue ARGS` in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["jobqueue", *args])
    for name, value in {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_JOBS_MODULE": "__tests__.support.jobs",
                        "JOBQUEUE_LOG_FORMAT": "json", **env}.items():
        monkeypatch.setenv(name, value)
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(stdin))
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        reset_job_queue()
    out, err = capsys.readouterr()
    return code, out, err


def nested(depth: int) -> str:
    return '{"data": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


def assert_one_error_line(code: int, err: str, message: str) -> None:
    assert code == 1, err
    lines = [line for line in err.splitlines() if not line.startswith("{")]  # JSON log lines aside
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize(("args", "env", "message"), [
    (["enqueue", "EchoJob", "--payload", nested(500)], {}, "cannot be stored as JSON: Maximum serialization depth"),
    (["enqueue", "EchoJob", "--payload", nested(5000)], {}, "--payload is nested too deeply"),
    (["enqueue", "EchoJob", "--payload", '{"data": NaN}'], {}, "--payload holds NaN, which is not JSON"),
    (["enqueue", "EchoJob", "--payload", '{"data": -Infinity}'], {}, "--payload holds -Infinity"),
    (["enqueue", "EchoJob", "--payload", "@/no/such/file.json"], {}, "--payload @/no/such/file.json: cannot read"),
    (["enqueue", "NoopJob", "--in", "99999999d"], {}, "--in: expected a duration from 0 to 100 years"),
    (["enqueue", "NoopJob", "--at", "9999-12-31T23:59:59-05:00"], {}, "is out of range: in UTC it must fall"),
    (["enqueue", "NoopJob", "--at", "0001-01-01T00:00:00+05:00"], {}, "is out of range"),
    (["jobs", "show", str(2**64)], {}, f"no job with id {2**64}"),
    (["jobs", "cancel", "9" * 30], {}, f"no job with id {'9' * 30}"),
    (["jobs", "list", "--limit", str(2**64)], {}, "number of jobs to list must be a positive integer"),
    (["status"], {"JOBQUEUE_JOBS_MODULE": ""}, "JOBQUEUE_JOBS_MODULE: expected a module to import"),
    (["status"], {"JOBQUEUE_DATABASE_URL": "postgresql://me:s3cret@host:notaport/db"},
     "cannot parse 'postgresql://me:***@host:notaport/db' as a database URL"),
    (["status"], {"JOBQUEUE_DATABASE_URL": "sqlite://"}, "is an in-memory database"),
    (["status"], {"JOBQUEUE_DATABASE_URL": "sqlite:///jobs.db?foo=bar"}, "unknown option foo in 'sqlite:///jobs.db"),
    (["status"], {"JOBQUEUE_DATABASE_URL": "sqlite:///jobs.db?timeout=soon"}, "bad option in 'sqlite:///jobs.db"),
    (["status"], {"JOBQUEUE_DATABASE_URL": "postgresql://postgres@127.0.0.1/test?bogus=1"},
     'the database refused: invalid connection option "bogus"'),
    (["enqueue", "NoopJob"], {"JOBQUEUE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test"},
     "the database refused: connection failed"),
    (["cleanup"], {"JOBQUEUE_RETENTION": "99999999d"}, "JOBQUEUE_RETENTION: expected a duration from 0 to 100 years"),
    (["worker", "--burst"], {"JOBQUEUE_LEASE_SECONDS": "99999999d"}, "JOBQUEUE_LEASE_SECONDS: expected a duration"),
    (["status"], {"JOBQUEUE_QUEUES": "ok,not ok"}, "each queue name must be 1-100 letters"),
])
def test_bad_input_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], queue: JobQueue,
                               database_url: str, args: list[str], env: dict[str, str], message: str) -> None:
    code, _, err = cli(monkeypatch, capsys, database_url, *args, **env)
    assert_one_error_line(code, err, message)
    assert "s3cret" not in err
    assert sum(n for _, _, n in queue.store.counts()) == 0


def test_a_misspelt_setting_is_named_with_the_closest_real_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sqlite_url: str,
) -> None:
    code, _, err = cli(monkeypatch, capsys, sqlite_url, "status", "--json", JOBQUEUE_CONCURENCY="20")
    assert code == 0
    warning = next(json.loads(line) for line in err.splitlines() if "unknown_setting_ignored" in line)
    assert (warning["variable"], warning["did_you_mean"]) == ("JOBQUEUE_CONCURENCY", "JOBQUEUE_CONCURRENCY")


def test_big_payloads_come_from_a_file_or_stdin_and_are_shown_cut(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], queue: JobQueue, database_url: str,
    tmp_path: Path,
) -> None:
    data = "x" * 2_000_000
    document = tmp_path / "payload.json"
    document.write_text(json.dumps({"data": data}))
    code, out, err = cli(monkeypatch, capsys, database_url, "enqueue", "EchoJob", "--payload", f"@{document}", "--json")
    assert code == 0, err
    from_file = json.loads(out)["id"]
    code, out, err = cli(monkeypatch, capsys, database_url, "enqueue", "EchoJob", "--payload", "-", "--json",
                         stdin=json.dumps({"data": [1, 2]}))
    assert code == 0 and queue.store.get(json.loads(out)["id"]).payload == {"data": [1, 2], "path": None}
    code, shown, _ = cli(monkeypatch, capsys, database_url, "jobs", "show", str(from_file))
    assert code == 0 and len(shown) < 20_000 and "more characters; --json prints all" in shown
    code, full, _ = cli(monkeypatch, capsys, database_url, "jobs", "show", str(from_file), "--json")
    assert json.loads(full)["payload"]["data"] == data


def test_the_sqlite_file_is_private(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    monkeypatch.setattr(os, "umask", os.umask)  # restored whatever the test does
    old = os.umask(0o022)
    try:
        url = f"sqlite:///{tmp_path / 'private.db'}"
        code, _, err = cli(monkeypatch, capsys, url, "enqueue", "NoopJob")
    finally:
        os.umask(old)
    assert code == 0, err
    modes = {path.name: path.stat().st_mode & 0o777 for path in tmp_path.glob("private.db*")}
    assert modes["private.db"] == 0o600 and set(modes.values()) == {0o600}, modes


# -- the worker, as a real process ------------------------------------------------------------------------


def test_worker_start_up_errors_are_one_line(tmp_path: Path) -> None:
    missing_directory = run_cli(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}", "worker", "--burst")
    assert_one_error_line(missing_directory.returncode, missing_directory.stderr, "unable to open database file")
    server_down = run_cli("postgresql://postgres@127.0.0.1:1/test", "worker", "--burst")
    assert_one_error_line(server_down.returncode, server_down.stderr, "the database refused: connection failed")
    newer = tmp_path / "newer.db"
    assert run_cli(f"sqlite:///{newer}", "status").returncode == 0
    with sqlite3.connect(newer) as connection:
        connection.execute("UPDATE jobqueue_alembic_version SET version_num = '9999'")
    too_new = run_cli(f"sqlite:///{newer}", "worker", "--burst")
    assert_one_error_line(too_new.returncode, too_new.stderr, "newer")


def test_the_db_commands_migrate_and_a_worker_on_old_tables_says_what_to_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    head, previous = schema.head(), schema.revisions()[-2]
    assert f"base (head {head}): no jobqueue tables yet" in run_cli(url, "db", "current").stdout
    assert run_cli(url, "db", "upgrade", previous).stdout.strip() == f"upgraded the jobqueue tables: base -> {previous}"
    old = run_cli(url, "worker", "--burst")
    assert_one_error_line(old.returncode, old.stderr, f"at revision {previous}, older than this jobqueue ({head}): "
                                                      "run `jobqueue db upgrade`")
    assert json.loads(run_cli(url, "db", "upgrade", "--json").stdout) == {"before": previous, "after": head,
                                                                          "head": head}
    assert f"{head} (head {head}): up to date" in run_cli(url, "db", "current").stdout
    assert run_cli(url, "enqueue", "NoopJob").returncode == 0
    refused = run_cli(url, "db", "downgrade", "base")
    assert_one_error_line(refused.returncode, refused.stderr, "drops the jobqueue tables with every job in them")
    downgraded = run_cli(url, "db", "downgrade", previous).stdout.strip()
    assert downgraded == f"downgraded the jobqueue tables: {head} -> {previous}"


def test_burst_on_a_read_only_database_stops_with_one_line(tmp_path: Path) -> None:
    """Before: a read-only SQLite file was treated as an outage and retried forever."""
    path = tmp_path / "ro.db"
    assert run_cli(f"sqlite:///{path}", "enqueue", "NoopJob").returncode == 0
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    result = subprocess.run([sys.executable, "-m", "main.cli", "worker", "--burst"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                        "JOBQUEUE_DATABASE_URL": read_only,
                                                        "JOBQUEUE_JOBS_MODULE": "__tests__.support.jobs",
                                                        "JOBQUEUE_LOG_FORMAT": "json"})
    assert_one_error_line(result.returncode, result.stderr, "readonly database")
