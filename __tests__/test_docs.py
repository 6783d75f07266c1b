"""Every Python sample in docs/ and the README runs; the README gives exactly two set-up commands."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from __tests__.conftest import ROOT
from __tests__.support.doc_samples import blocks

DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_the_docs_exist() -> None:
    names = {doc.name for doc in DOCS}
    assert {"JOB_SYSTEM_README.md", "JOB_SYSTEM_QUICK_REFERENCE.md", "JOB_SYSTEM_ARCHITECTURE.md",
            "JOB_SYSTEM_ANALYSIS.md", "CONTINUATION.md", "DEMO.md"} <= names


@pytest.mark.parametrize("doc", [doc for doc in [*DOCS, ROOT / "README.md"] if blocks(doc)], ids=lambda d: d.name)
def test_python_samples_run(doc: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JOBQUEUE_DATABASE_URL": f"sqlite:///{tmp_path / 'docs.db'}",
           "JOBQUEUE_POLL_INTERVAL": "0.02", "JOBQUEUE_LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-m", "__tests__.support.doc_samples", str(doc)], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(blocks(doc))} samples ran" in result.stdout


def test_readme_has_exactly_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^```bash\n(.*?)\n```", readme, re.DOTALL | re.MULTILINE)
    assert len(commands) == 2 and all("\n" not in command for command in commands)
    demo, tests = commands
    assert demo.startswith("python3 -m venv .venv") and demo.endswith("jobqueue demo")
    assert tests.endswith("python -m pytest")
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_the_event_catalogue_in_the_docs_is_the_code_s() -> None:
    from main.events import CATALOGUE

    text = (ROOT / "docs" / "OBSERVABILITY.md").read_text()
    documented = re.findall(r"^\| `([a-z_.]+)` \| (\w+) \| ([^|]+) \| ([^|]+) \|$",
                            text.split("<!-- catalogue")[1].split("<!-- end of catalogue")[0], re.MULTILINE)
    assert [(name, level, fields.strip(), meaning.strip()) for name, level, fields, meaning in documented] == [
        (event.value, info.level, ", ".join(info.fields) or "-", info.meaning) for event, info in CATALOGUE.items()]
