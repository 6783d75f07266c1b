// jobqueue dashboard: refreshes the progress of running jobs every second (no framework, no build step).
"use strict";

(function () {
  const live = document.querySelector("[data-live]");
  if (!live) return;
  const base = document.body.dataset.base || "";

  function text(p) {
    const total = p.total === null || p.total === undefined ? "?" : p.total;
    return `${p.step} ${p.done}/${total}` + (p.resumptions ? `, resumed ${p.resumptions}x` : "");
  }

  function show(holder, p) {
    let bar = holder.querySelector("progress");
    let label = holder.querySelector(".progress-text");
    if (!bar) {
      holder.textContent = "";
      bar = holder.appendChild(document.createElement("progress"));
      holder.appendChild(document.createTextNode(" "));
      label = holder.appendChild(document.createElement("span"));
      label.className = "progress-text";
    }
    bar.max = p.total || p.done || 1;
    bar.value = p.done;
    label.textContent = text(p);  // textContent: whatever a step is called, it is shown as text
  }

  async function refresh() {
    try {
      const response = await fetch(`${base}/api/jobs?status=running&limit=500`, {credentials: "same-origin"});
      if (!response.ok) return;
      const running = new Map((await response.json()).jobs.map((job) => [String(job.id), job]));
      document.querySelectorAll("[data-job-id]").forEach((row) => {
        const job = running.get(row.dataset.jobId);
        const holder = row.classList.contains("progress") ? row : row.querySelector("td.progress");
        if (!job) {
          row.classList.add("finished");
        } else if (job.progress && holder) {
          show(holder, job.progress);
        }
      });
    } catch (error) {
      // the dashboard went away for a moment: try again at the next tick
    }
  }

  setInterval(refresh, 1000);
})();
