// The service in detail (the strip under the header has the main figures): readiness, jobs by
// status, this instance's pool, every instance's registered workers, and every inbox's last scan.

import { authHeaders, getJson } from "../api.js";
import { h, replaceChildrenKeepingFocus, when } from "../dom.js";

const REFRESH_MS = 3000;

export function render(main) {
  const content = h("div");
  main.append(h("h1", {}, "Health"), content);
  const refresh = async () => {
    const [status, ready] = await Promise.all([getJson("/status"), readiness()]);
    replaceChildrenKeepingFocus(
      content,
      h("p", { class: ready.ready ? "ok" : "error", dataset: { ready: ready.ready } },
        ready.ready ? "Ready." : `Not ready: ${ready.problems.join("; ")}`),
      h("h2", {}, "Jobs"),
      h("dl", { class: "details" }, Object.entries(status.jobs).flatMap(([name, count]) => [
        h("dt", {}, name), h("dd", {}, h("a", { href: `#/jobs?status=${name}` }, String(count)))])),
      workers(status.workers),
      h("h2", {}, "Workers of every instance"),
      status.instances.length ? instances(status.instances)
        : h("p", { class: "empty" }, "No worker is registered: no instance runs a pool."),
      h("h2", {}, "Inboxes"),
      status.inboxes.length ? inboxes(status.inboxes) : h("p", { class: "empty" }, "No inbox has been scanned yet."),
    );
  };
  refresh().catch(() => {});
  const timer = setInterval(() => refresh().catch(() => {}), REFRESH_MS);
  return () => clearInterval(timer);
}

// /ready answers 503 with its reasons when not ready: that is an answer, not an error.
async function readiness() {
  const response = await fetch("/ready", { headers: authHeaders() });
  return response.json();
}

function workers(pool) {
  if (!pool) return h("p", { class: "empty" }, "This instance runs no workers (see the others' /status).");
  return h("section", {}, h("h2", {}, "Workers"),
    h("dl", { class: "details" },
      ["size", "up", "busy", "idle", "restarts", "recycles"].flatMap((name) => [
        h("dt", {}, name), h("dd", {}, String(pool[name]))])));
}

// One row per registered worker, grouped by instance (from the database: whichever instance answers).
function instances(list) {
  return h("table", { class: "instances" },
    h("thead", {}, h("tr", {}, ["Instance", "Worker", "Role", "State", "Job", "Heartbeat"]
      .map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, list.flatMap((instance) => instance.workers.map((worker) =>
      h("tr", { dataset: { worker: worker.id, instance: instance.name, stale: worker.stale } },
        h("td", { "data-label": "Instance" }, instance.name),
        h("td", { "data-label": "Worker" }, `${worker.host} pid ${worker.pid}`),
        h("td", { "data-label": "Role" }, worker.role),
        h("td", { "data-label": "State", class: worker.stale ? "error" : "" },
          worker.stale ? `stale (${worker.state})` : worker.state),
        h("td", { "data-label": "Job" }, worker.job_id
          ? h("a", { href: `#/job/${worker.job_id}` }, `#${worker.job_id}`) : ""),
        h("td", { "data-label": "Heartbeat" }, `${Math.round(worker.heartbeat_age_s)} s ago`))))));
}

function inboxes(list) {
  return h("table", { class: "inboxes" },
    h("thead", {}, h("tr", {}, ["Inbox", "Folder", "Watched by", "Last scan", "New files", "Scanned by"]
      .map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, list.map((inbox) => h("tr", { dataset: { inbox: inbox.name } },
      h("td", { "data-label": "Inbox" }, h("a", { href: `#/jobs?${new URLSearchParams({ source: `inbox:${inbox.name}` })}` }, inbox.name)),
      h("td", { "data-label": "Folder" }, inbox.path),
      h("td", { "data-label": "Watched by" }, inbox.observer === "polling"
        ? `polling every ${inbox.poll_interval_s} s` : "native events (inotify)"),
      h("td", { "data-label": "Last scan" }, when(inbox.last_scan_at) || "never"),
      h("td", { "data-label": "New files" }, inbox.last_scan_new ?? ""),
      h("td", { "data-label": "Scanned by" }, inbox.scanned_by ?? "")))));
}
