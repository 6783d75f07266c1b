"""The dashboard's JSON API and pages, called with httpx against the ASGI app on real SQLite and PostgreSQL:
what they show, what the actions do, and who may act (token, CSRF, Origin, read-only, escaping)."""

import os
import re
import subprocess
import sys

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from __tests__.conftest import ROOT, QueueFactory
from __tests__.support.jobs import FailingJob, NoopJob, RejectingJob
from main.services.job_queue import JobQueue
from main.web.dashboard import dashboard_app

pytestmark = pytest.mark.anyio
XSS = "<script>alert('owned')</script>"


def client(app: Starlette, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash.local", headers=headers)


async def csrf_of(http: httpx.AsyncClient, page: str = "/jobs?status=failed") -> str:
    """The CSRF token, read from a page's form as a browser has it."""
    return re.search(r'name="csrf" value="([0-9a-f]+)"', (await http.get(page)).text).group(1)  # type: ignore[union-attr]


@pytest.fixture
async def worked(make_queue: QueueFactory) -> JobQueue:
    """Three completed jobs, one failed with markup in its payload and error, one in retry backoff, one pending."""
    queue = make_queue()
    for n in range(3):
        await NoopJob.perform_later({"n": n})
    await RejectingJob.perform_later({"message": XSS})
    await FailingJob.perform_later({"message": "flaky"})
    await queue.run(burst=True)
    await NoopJob.perform_later({"n": 99}, queue="later")
    return queue


async def test_the_api_lists_pages_and_details_jobs(worked: JobQueue) -> None:
    async with client(dashboard_app(worked)) as http:
        queues = {q["name"]: q for q in (await http.get("/api/queues")).json()}
        assert queues["default"]["counts"]["completed"] == 3 and queues["later"]["counts"]["pending"] == 1
        [failed] = (await http.get("/api/jobs", params={"status": "failed"})).json()["jobs"]
        assert failed["type"] == "RejectingJob" and failed["error"] == f"NonRetryableError: {XSS}"
        detail = (await http.get(f"/api/jobs/{failed['id']}")).json()
        assert detail["payload"] == {"message": XSS} and "Traceback" in detail["last_traceback"]
        seen, before = [], None
        while True:  # three at a time, newest first, each job once
            page = (await http.get("/api/jobs", params={"limit": 3, **({"before": before} if before else {})})).json()
            seen += [job["id"] for job in page["jobs"]]
            if (before := page["next_before"]) is None:
                break
        assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 6
        [scheduled] = (await http.get("/api/jobs", params={"scheduled": "1"})).json()["jobs"]
        assert scheduled["type"] == "FailingJob"  # in its backoff
        overview = (await http.get("/api/overview")).json()
        assert sum(row["count"] for row in overview["throughput"] if row["status"] == "completed") == 3
        assert (await http.get("/api/jobs/999999")).status_code == 404
        bad = await http.get("/api/jobs", params={"status": "done"})
        assert bad.status_code == 400 and "status must be one of" in bad.json()["error"]
        assert (await http.get("/api/jobs", params={"limit": "0"})).status_code == 400


async def test_actions_need_the_csrf_token_and_do_what_they_say(worked: JobQueue) -> None:
    async with client(dashboard_app(worked)) as http:
        [failed] = (await http.get("/api/jobs", params={"status": "failed"})).json()["jobs"]
        refused = await http.post(f"/api/jobs/{failed['id']}/retry")
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
        assert worked.store.get(failed["id"]).status.value == "failed"  # nothing happened
        csrf = await csrf_of(http)
        elsewhere = await http.post(f"/api/jobs/{failed['id']}/retry",
                                    headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
        assert elsewhere.status_code == 403 and "another site" in elsewhere.json()["error"]
        done = await http.post(f"/api/jobs/{failed['id']}/retry", headers={"X-CSRF-Token": csrf})
        assert done.json() == {"id": failed["id"], "status": "pending"}
        assert worked.store.get(failed["id"]).status.value == "pending"
        form = await http.post("/queues/later/pause", data={"csrf": csrf, "next": "/queues"})
        assert form.status_code == 303 and form.headers["location"] == "/queues"
        assert [q.paused for q in worked.list_queues_sync() if q.name == "later"] == [True]
        cancelled = await http.post("/api/jobs/cancel", params={"status": "pending", "queue": "later"},
                                    headers={"X-CSRF-Token": csrf})
        assert cancelled.json() == {"cancelled": 1, "asked_to_stop": 0}
        wrong = await http.post("/api/jobs/retry", params={"status": "completed"}, headers={"X-CSRF-Token": csrf})
        assert wrong.status_code == 409 and "cannot retry completed jobs" in wrong.json()["error"]


async def test_with_a_token_nothing_is_shown_without_it(worked: JobQueue) -> None:
    app = dashboard_app(worked, token="s3cret-token")
    async with client(app) as anonymous:
        assert (await anonymous.get("/api/jobs")).status_code == 401
        assert (await anonymous.get("/")).headers["location"] == "/login"
        assert (await anonymous.post("/login", data={"token": "guess"})).status_code == 401
        signed_in = await anonymous.post("/login", data={"token": "s3cret-token"})
        assert signed_in.status_code == 303 and "httponly" in signed_in.headers["set-cookie"].lower()
        assert (await anonymous.get("/")).status_code == 200  # the session cookie
    async with client(app, authorization="Bearer s3cret-token") as script:
        [failed] = (await script.get("/api/jobs", params={"status": "failed"})).json()["jobs"]
        assert (await script.post(f"/api/jobs/{failed['id']}/retry")).status_code == 200  # the bearer stands for CSRF


async def test_read_only_shows_everything_and_does_nothing(worked: JobQueue) -> None:
    async with client(dashboard_app(worked, read_only=True)) as http:
        page = await http.get("/jobs", params={"status": "failed"})
        assert "RejectingJob" in page.text and "retry" not in re.sub(r"<nav>.*?</nav>|<p class=\"tabs\">.*?</p>", "",
                                                                     page.text, flags=re.S)
        [failed] = (await http.get("/api/jobs", params={"status": "failed"})).json()["jobs"]
        refused = await http.post(f"/api/jobs/{failed['id']}/retry")
        assert refused.status_code == 403 and "read-only" in refused.json()["error"]


async def test_markup_in_payloads_and_errors_is_shown_as_text(worked: JobQueue) -> None:
    async with client(dashboard_app(worked)) as http:
        [failed] = (await http.get("/api/jobs", params={"status": "failed"})).json()["jobs"]
        for page in (f"/jobs/{failed['id']}", "/jobs?status=failed"):
            response = await http.get(page)
            assert XSS not in response.text and "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in response.text
            assert "script-src" not in response.headers["content-security-policy"]  # default-src 'self' covers it
            assert response.headers["x-frame-options"] == "DENY"


async def test_it_can_be_mounted_in_an_application(worked: JobQueue) -> None:
    app = Starlette(routes=[Mount("/ops/jobs", dashboard_app(worked))])
    async with client(app) as http:
        overview = await http.get("/ops/jobs/")
        assert overview.status_code == 200 and 'href="/ops/jobs/static/dashboard.css"' in overview.text
        assert (await http.get("/ops/jobs/static/dashboard.js")).status_code == 200
        csrf = await csrf_of(http, "/ops/jobs/jobs?status=failed")
        [failed] = (await http.get("/ops/jobs/api/jobs", params={"status": "failed"})).json()["jobs"]
        retried = await http.post(f"/ops/jobs/jobs/{failed['id']}/retry",
                                  data={"csrf": csrf, "next": "/ops/jobs/jobs?status=failed"})
        assert retried.status_code == 303 and retried.headers["location"] == "/ops/jobs/jobs?status=failed"
        assert worked.store.get(failed["id"]).status.value == "pending"



def test_the_dashboard_refuses_another_address_without_a_token(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "JOBQUEUE_DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.db'}"}
    env.pop("JOBQUEUE_DASHBOARD_TOKEN", None)
    refused = subprocess.run([sys.executable, "-m", "main.cli", "dashboard", "--host", "0.0.0.0", "--port", "0"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "without JOBQUEUE_DASHBOARD_TOKEN" in refused.stderr


async def test_workflow_runs_are_listed_and_shown_step_by_step(make_queue: QueueFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from __tests__.support.workflow_jobs import JOBS as WORKFLOW_JOBS
    from __tests__.support.workflow_jobs import WORKFLOWS, CheckoutWorkflow

    queue = make_queue(jobs=WORKFLOW_JOBS, workflows=WORKFLOWS)
    broken = tmp_path / "broken"
    broken.touch()
    run_id = await CheckoutWorkflow.start({"path": str(tmp_path / "steps.log"), "broken": str(broken)})
    await queue.run(burst=True)
    async with client(dashboard_app(queue)) as http:
        [listed] = (await http.get("/api/workflows", params={"status": "failed"})).json()
        assert listed["id"] == run_id and listed["steps_by_status"] == {"completed": 3, "failed": 1, "cancelled": 1}
        shown = (await http.get(f"/api/workflows/{run_id}")).json()
        assert [(s["step"], s["status"]) for s in shown["steps"]][2:] == [
            ("inventory", "failed"), ("create_order", "completed"), ("confirm", "cancelled")]
        page = await http.get(f"/workflows/{run_id}")
        assert page.status_code == 200 and 'data-step="inventory"' in page.text and "out of stock" in page.text
        inventory = next(s for s in shown["steps"] if s["step"] == "inventory")
        assert f'action="/jobs/{inventory["job_id"]}/retry"' in page.text  # the failed step's retry button
        assert (await http.get("/api/workflows", params={"status": "lost"})).status_code == 400
        assert (await http.get("/api/workflows/999999")).status_code == 404
