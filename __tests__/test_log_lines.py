"""Log lines of processes that share one stderr stay whole: each line reaches the file in one write."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WRITER = """
import sys
from main.log import configure_logging, get_logger
configure_logging("json", "info")
log = get_logger(worker_id=sys.argv[1])
for n in range(3000):
    log.info("job_completed", job_id=n, job_type="SleepJob", attempt=1, duration=0.05)
"""


def test_lines_from_processes_sharing_a_stderr_are_never_spliced(tmp_path: Path) -> None:
    """Before: a line's text and its newline went out in two writes, and another process's line could land
    between them (seen with `worker --processes 2`)."""
    shared = (tmp_path / "shared.log").open("w")
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, f"w{n}"], cwd=ROOT, stdout=shared, stderr=shared)
               for n in range(4)]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0, 0, 0]
    shared.close()
    lines = (tmp_path / "shared.log").read_text().splitlines()
    assert len(lines) == 4 * 3000
    assert {json.loads(line)["worker_id"] for line in lines} == {"w0", "w1", "w2", "w3"}
