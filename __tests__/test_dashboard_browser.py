"""The dashboard in a real browser (Debian's headless chromium, through its chromedriver), served by a real
`jobqueue dashboard` process beside a real worker process: a resumable job's progress advances on the page
without a reload, a failed job's retry button puts it back to pending, and markup in a payload is shown as
text (no script runs). Screenshots are kept in the test's tmp dir."""

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from __tests__.conftest import FAST, ROOT, wait_for
from __tests__.support.jobs import JOBS, CountdownJob, RejectingJob
from main.db.entities import JobStatus
from main.services.job_queue import JobQueue, set_job_queue
from main.settings import Settings

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
XSS = "<script>alert('owned')</script>"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        reason = "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires the browser test (.ci/run installs them)", pytrace=False)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")),
                              options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def dashboard(sqlite_url: str, tmp_path: Path) -> Iterator[str]:
    """`jobqueue dashboard` on a free port; its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JOBQUEUE_DATABASE_URL": sqlite_url,
           "JOBQUEUE_JOBS_MODULE": "__tests__.support.jobs", "JOBQUEUE_LOG_FORMAT": "json"}
    with (tmp_path / "dashboard.log").open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "main.cli", "dashboard", "--port", str(port)], cwd=ROOT,
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _answers(port))
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_progress_retry_and_escaping_as_a_person_sees_them(sqlite_url: str, start_worker, browser, dashboard: str,
                                                            tmp_path: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    queue = set_job_queue(JobQueue(Settings.load(database_url=sqlite_url, **FAST), jobs=JOBS))
    failed_id = RejectingJob.perform_later_sync({"message": XSS}, queue="fragile")
    anyio.run(lambda: queue.run(burst=True))  # fails at once; no worker below serves "fragile" again
    start_worker(sqlite_url, "--queue", "default")
    countdown_id = CountdownJob.perform_later_sync({"count": 60, "item_delay": 0.1})

    def progress_on_page() -> int | None:
        rows = browser.find_elements(By.CSS_SELECTOR, f'tr[data-job-id="{countdown_id}"] progress')
        return int(float(rows[0].get_attribute("value"))) if rows else None

    def running_row_shown() -> bool:
        browser.get(f"{dashboard}/jobs?status=running")
        return progress_on_page() is not None

    wait_for(running_row_shown, interval=0.2)
    first = progress_on_page()
    assert first is not None and first < 60
    later = wait_for(lambda: (found := progress_on_page()) is not None and found >= first + 5 and found, timeout=10)
    assert later > first  # moved on the page by its script, with no reload
    browser.save_screenshot(str(tmp_path / "running.png"))

    browser.get(f"{dashboard}/jobs?status=failed")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{failed_id}"]')
    assert XSS in row.find_element(By.CSS_SELECTOR, ".error").text  # the markup, shown as text
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018  (no script of the payload ran)
    browser.save_screenshot(str(tmp_path / "failed.png"))
    row.find_element(By.XPATH, ".//button[text()='retry']").click()
    wait_for(lambda: queue.store.get(failed_id).status == JobStatus.PENDING)
    wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, f'tr[data-job-id="{failed_id}"]'))  # back on the list

    browser.get(f"{dashboard}/jobs/{failed_id}")
    assert "pending" in browser.find_element(By.TAG_NAME, "h1").text
    assert XSS in browser.find_element(By.CSS_SELECTOR, "pre.payload").text
    browser.save_screenshot(str(tmp_path / "job.png"))
    wait_for(lambda: queue.store.get(countdown_id).status == JobStatus.COMPLETED, timeout=30)
    assert all((tmp_path / name).stat().st_size > 10_000 for name in ("running.png", "failed.png", "job.png"))
