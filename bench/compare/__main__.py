"""jobqueue side by side with its peers, in one run, on this machine.

    python -m bench.compare [--quick] [--pg-url postgresql://postgres@127.0.0.1/postgres]

The first run creates .bench-peers/ (a virtual environment of its own with Huey, procrastinate, RQ and
jobqueue itself; none of them a dependency of the library) and continues inside it. Then, for each system:
enqueue one by one, bulk enqueue, process no-op jobs with one worker process (and 2 and 4 on PostgreSQL),
pickup latency of one job into an idle worker, idle worker CPU, and peak RSS while processing many jobs; with each
processing figure, the cores its workers and their server kept busy and their CPU per job.
Throughputs are medians of several rounds. The table ends with jobqueue's ratio to the peer on the same engine.
"""

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PEERS_ENV = ROOT / ".bench-peers"
PEERS = ["huey>=3.5", "procrastinate>=3.10", "rq>=2.0", "redis>=5"]


def _install_jobqueue(python: Path) -> None:
    """(Re)install jobqueue into the environment whenever its pyproject.toml changed (a new dependency)."""
    stamp, wanted = PEERS_ENV / "jobqueue-pyproject.sha256", hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    if stamp.exists() and stamp.read_text() == wanted.hexdigest():
        return
    print("installing jobqueue and its dependencies into the benchmark environment ...", file=sys.stderr)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(ROOT)], check=True)
    stamp.write_text(wanted.hexdigest())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer jobs and rounds (a few minutes)")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_ADMIN_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"),
                        help="a server where the benchmark may create and drop its databases")
    parser.add_argument("--only", default="", help="comma-separated systems: jobqueue-sqlite,huey,jobqueue-pg,"
                                                  "procrastinate,rq")
    args = parser.parse_args()
    python = PEERS_ENV / "bin" / "python"
    if Path(sys.prefix).resolve() != PEERS_ENV.resolve():
        if not python.exists():
            print(f"creating {PEERS_ENV} with {', '.join(PEERS)} and jobqueue ...", file=sys.stderr)
            venv.create(PEERS_ENV, with_pip=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS], check=True)
        _install_jobqueue(python)
        os.execv(str(python), [str(python), "-m", "bench.compare", *sys.argv[1:]])
    from bench.compare.run import run

    run(quick=args.quick, pg_admin_url=args.pg_url, only=[name for name in args.only.split(",") if name])


if __name__ == "__main__":
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores", file=sys.stderr)
    main()
