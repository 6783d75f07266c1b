"""The benchmark scripts run and print their figures (tiny sizes here: the figures themselves are not tested)."""

import os
import subprocess
import sys

import pytest

from __tests__.conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("bench.bench_queue", ["--jobs", "50", "--latency-samples", "2", "--poll-interval", "0.2"],
         ["enqueue one by one", "enqueue in bulk", "process with one worker", "pickup latency, same process",
          "pickup latency, worker in another process"]),
        ("bench.bench_checkpoints", ["--items", "60"], ["every item", "every 100 items", "every second",
                                                              "default policy"]),
        ("bench.bench_store", ["--jobs", "200", "--batch", "50"], ["bulk enqueue", "one by one", "ms per 50",
                                                                   "record"]),
        ("bench.bench_backlog", ["--backlog", "0,300"], ["0 jobs due tomorrow", "300 jobs due tomorrow", "ms"]),
        ("bench.bench_events", ["--jobs", "100", "--rounds", "1", "--emits", "1000"],
         ["heard by", "nobody", "a subscriber", "nothing listens", "info logs + metrics + subscriber"]),
    ],
)
def test_benchmark_prints_its_figures(script: str, args: list[str], expected: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", script, *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for label in expected:
        assert label in result.stdout
