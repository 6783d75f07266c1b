"""The workloads, run against each system in turn (inside .bench-peers/, see __main__.py), and the table."""

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.compare.systems import Huey, Jobqueue, Procrastinate, Rq, System, version


@dataclass(frozen=True)
class Plan:
    enqueue: int  # jobs enqueued one by one
    bulk: int
    process: int  # jobs per processing round
    rounds: int
    latency_samples: int
    idle_seconds: float
    rss_jobs: int


QUICK = Plan(enqueue=2_000, bulk=10_000, process=10_000, rounds=3, latency_samples=50, idle_seconds=10,
             rss_jobs=20_000)
FULL = Plan(enqueue=10_000, bulk=10_000, process=10_000, rounds=5, latency_samples=200, idle_seconds=30,
            rss_jobs=100_000)


@dataclass
class Results:
    system: str
    figures: dict[str, float | str] = field(default_factory=dict)


def run(*, quick: bool, pg_admin_url: str, only: list[str]) -> None:
    plan = QUICK if quick else FULL
    workdir = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    base = pg_admin_url.rpartition("/")[0]
    wanted = lambda key: not only or key in only  # noqa: E731
    jobqueue_pg = fresh_database(pg_admin_url, "bench_jobqueue") if wanted("jobqueue-pg") else ""
    procrastinate_pg = fresh_database(pg_admin_url, "bench_procrastinate") if wanted("procrastinate") else ""
    # The peers' apps read their locations once, when bench.compare.peer_apps is first imported.
    os.environ.update(BENCH_SQLITE=str(workdir / "huey.db"), BENCH_PG_URL=procrastinate_pg)
    builders: dict[str, Callable[[], System]] = {
        "jobqueue-sqlite": lambda: Jobqueue(workdir, "", "sqlite"),
        "huey": lambda: Huey(workdir, ""),
        "jobqueue-pg": lambda: Jobqueue(workdir, jobqueue_pg, "postgresql"),
        "procrastinate": lambda: Procrastinate(workdir, procrastinate_pg),
        "rq": lambda: Rq(workdir, ""),
    }
    print(f"plan: {plan}; work files in {workdir}; PostgreSQL at {base}", file=sys.stderr)
    results = []
    for key, build in builders.items():
        if not wanted(key):
            continue
        print(f"-- {key}", file=sys.stderr)
        system = build()
        results.append(measure(key, system, plan))
    print_table(results, plan)


def fresh_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{admin_url.rpartition('/')[0]}/{name}"


def measure(key: str, system: System, plan: Plan) -> Results:
    results = Results(key)
    figures = results.figures
    system.reset()
    started = time.perf_counter()
    system.enqueue_one(plan.enqueue)
    figures["enqueue one by one (jobs/s)"] = plan.enqueue / (time.perf_counter() - started)
    system.reset()
    try:
        started = time.perf_counter()
        system.enqueue_bulk(plan.bulk)
        figures["bulk enqueue (jobs/s)"] = plan.bulk / (time.perf_counter() - started)
    except NotImplementedError:
        figures["bulk enqueue (jobs/s)"] = "-"
    workers = [1, 2, 4] if system.engine == "postgresql" else [1]
    for count in workers:
        rates = [process(system, plan.process, count) for _ in range(plan.rounds)]
        processes = f"{count} worker process{'es' if count > 1 else ''}"
        figures[f"process, {processes} (jobs/s)"] = statistics.median(rates)
        log(f"   {count} worker(s): {', '.join(f'{rate:,.0f}' for rate in rates)} jobs/s")
        cpu = [busy(system, count, statistics.median(rates)) for _ in range(plan.rounds)]
        figures[f"{BUSY}, {processes}"] = statistics.median(cores for cores, _ in cpu)
        figures[f"CPU per job with its server, {processes} (us)"] = statistics.median(micros for _, micros in cpu)
    p50, p95 = pickup(system, plan.latency_samples)
    figures["pickup p50 (ms)"], figures["pickup p95 (ms)"] = p50, p95
    figures["idle worker CPU (%)"] = idle_cpu(system, plan.idle_seconds)
    peak, early, late = memory(system, plan.rss_jobs)
    figures[f"peak RSS, {plan.rss_jobs:,} jobs (MB)"] = peak
    figures["RSS growth, first to last tenth (MB)"] = late - early
    log("   " + "; ".join(f"{name} {value if isinstance(value, str) else round(value, 1)}"
                         for name, value in figures.items()))
    return results


def fill(system: System, count: int) -> None:
    system.reset()
    try:
        system.enqueue_bulk(count)
    except NotImplementedError:
        system.enqueue_one(count)


@contextlib.contextmanager
def working(system: System, count: int, workers: int) -> Iterator[tuple[list[subprocess.Popen[bytes]], int]]:
    """`workers` processes at work on `count` jobs: yields them, and how many jobs were left, once the first job is
    taken; stops them on the way out. One worker starts on a full queue, as for every system. Several, where the
    system enqueues in bulk (all jobs appear at once), start first and settle, so that each takes part from the
    first job on, however long its start-up."""
    bulk = workers > 1 and type(system).enqueue_bulk is not System.enqueue_bulk
    if bulk:
        system.reset()
    else:
        fill(system, count)
    processes = [system.start_worker() for _ in range(workers)]
    try:
        if bulk:
            settle(processes)
            system.enqueue_bulk(count)
        yield processes, wait_for(system.remaining, lambda left: left < count, timeout=120)
    finally:
        stop(processes)


def process(system: System, count: int, workers: int) -> float:
    """Jobs/s from the first job taken to the last."""
    with working(system, count, workers) as (_, left):
        started = time.perf_counter()
        # Where the system records when each job started and ended, the rate comes from those records and the
        # harness asks seldom (each question is a query whose CPU the workers measured lose); else from polling.
        wait_for(system.remaining, lambda left: left == 0, timeout=600,
                 interval=0.1 if system.records_times else 0.01)
        ended = time.perf_counter()
    if system.records_times:
        first_start, last_end = system.span()
        return count / (last_end - first_start)
    return left / (ended - started)


def busy(system: System, workers: int, rate: float, *, lead: float = 0.2, window: float = 1.0) -> tuple[float, float]:
    """Cores kept busy, and CPU microseconds per job, by `workers` processes and their storage server while they
    work through a full queue, read from /proc over `window` seconds once they are well under way (start-up and
    the tail left out). Where one process and its server keep most of the machine's cores busy, more processes
    cannot be as many times faster: the rows say how much room the machine left."""
    count = int(rate * (lead + window) * 2) + 1_000  # jobs to spare: the queue must not run dry in the window
    with working(system, count, workers) as (processes, _):
        time.sleep(lead)
        before = _cpu_now(system, processes)
        time.sleep(window)
        after = _cpu_now(system, processes)
    if after[2] == 0:
        raise RuntimeError(f"{system.name}: the queue ran dry while CPU was measured; measure over more jobs")
    done = before[2] - after[2]
    cpu = after[1] - before[1]
    return cpu / (after[0] - before[0]), cpu / done * 1e6


def _cpu_now(system: System, processes: list[subprocess.Popen[bytes]]) -> tuple[float, float, int]:
    """(now, CPU seconds of the workers and of the server so far, jobs left)."""
    left = system.remaining()
    return time.perf_counter(), sum(cpu_seconds(p.pid) for p in processes) + server_cpu_seconds(system.server), left


def server_cpu_seconds(command: str) -> float:
    """CPU seconds of every process of this machine whose name starts with `command` (all of a server's)."""
    if not command:
        return 0.0
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # gone meanwhile
                if (entry / "comm").read_text().startswith(command):
                    total += cpu_seconds(int(entry.name))
    return total


def settle(processes: list[subprocess.Popen[bytes]], *, quiet_cpu: float = 0.05, window: float = 0.3) -> None:
    """Wait until every process has started up and idles (under `quiet_cpu` of a core over `window` s)."""
    time.sleep(window)
    for process in processes:
        before = cpu_seconds(process.pid)
        while True:
            time.sleep(window)
            after = cpu_seconds(process.pid)
            if after - before < quiet_cpu * window:
                break
            before = after


def pickup(system: System, samples: int) -> tuple[float, float]:
    """Milliseconds from enqueue to start, one job at a time, into an idle worker."""
    system.reset()
    worker = system.start_worker()
    path = Path(tempfile.mkstemp(prefix="clock-")[1])
    latencies = []
    try:
        settle([worker])
        for sample in range(samples):
            enqueued = time.time()
            system.enqueue_clock(str(path))
            lines = wait_for(lambda: path.read_text().splitlines(), lambda lines, n=sample: len(lines) > n,
                             timeout=30, interval=0.0005)
            latencies.append((float(lines[sample]) - enqueued) * 1000)
            time.sleep(0.01)
    finally:
        stop([worker])
        path.unlink()
    return statistics.median(latencies), statistics.quantiles(latencies, n=20)[18]


def idle_cpu(system: System, seconds: float) -> float:
    system.reset()
    worker = system.start_worker()
    try:
        time.sleep(2)
        before = cpu_seconds(worker.pid)
        time.sleep(seconds)
        return (cpu_seconds(worker.pid) - before) / seconds * 100
    finally:
        stop([worker])


def memory(system: System, count: int) -> tuple[float, float, float]:
    """Peak RSS of one worker while it processes `count` jobs, and its RSS in the first and the last tenth."""
    fill(system, count)
    worker = system.start_worker()
    samples: list[tuple[int, float]] = []
    try:
        while (left := system.remaining()) > 0:
            samples.append((left, rss_mb(worker.pid)))
            time.sleep(0.1)
        peak = peak_rss_mb(worker.pid)
    finally:
        stop([worker])
    early = [rss for left, rss in samples if left >= count * 0.9] or [samples[0][1]]
    late = [rss for left, rss in samples if left <= count * 0.1] or [samples[-1][1]]
    return peak, max(early), max(late)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmHWM") / 1024


def _status_kb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return 0.0


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], *, timeout: float, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout}s (last value: {value!r:.100})")
        time.sleep(interval)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


PEERS = {"jobqueue-sqlite": "huey", "jobqueue-pg": "procrastinate"}
HIGHER_IS_BETTER = "jobs/s"
BUSY = "cores busy"
NO_RATIO = ("RSS growth", BUSY)  # near zero either way, or a share of the machine: a ratio would say nothing


def print_table(results: list[Results], plan: Plan) -> None:
    by_key = {result.system: result.figures for result in results}
    versions = {"jobqueue": version("jobqueue"), "huey": version("huey"), "procrastinate": version("procrastinate"),
                "rq": version("rq")}
    print(f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
          + ", ".join(f"{name} {number}" for name, number in versions.items()))
    columns = [key for key in ("jobqueue-sqlite", "huey", "jobqueue-pg", "procrastinate", "rq") if key in by_key]
    ratio_columns = [key for key in PEERS if key in by_key and PEERS[key] in by_key]
    header = ["workload", *columns, *(f"{key} / {PEERS[key]}" for key in ratio_columns)]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    fullest = max(by_key.values(), key=len)  # its order, with the multi-process rows in place
    names = list(dict.fromkeys([*fullest, *(name for figures in by_key.values() for name in figures)]))
    for name in names:
        row = [name, *(_cell(by_key[key].get(name, "-"), 2 if name.startswith(BUSY) else 1) for key in columns)]
        for key in ratio_columns:
            ours, theirs = by_key[key].get(name), by_key[PEERS[key]].get(name)
            ok = isinstance(ours, float) and isinstance(theirs, float) and theirs > 0 and ours > 0
            ok = ok and not name.startswith(NO_RATIO)
            ratio = (ours / theirs if HIGHER_IS_BETTER in name else theirs / ours) if ok else None  # type: ignore[operator]
            row.append(f"{ratio:.2f}x" if ratio else "-")
        print("| " + " | ".join(row) + " |")
    print(f"\nratios: how many times better jobqueue is (throughput: ours / theirs; latency, CPU, memory: theirs /"
          f" ours). Rounds per throughput figure: {plan.rounds} (median).")


def _cell(value: float | str, decimals: int) -> str:
    if isinstance(value, str):
        return value
    return f"{value:,.0f}" if value >= 100 else f"{value:,.{decimals}f}"
