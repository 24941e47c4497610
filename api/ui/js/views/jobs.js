// The live jobs table: filters by status and source, pages through history, and follows /events.

import { getJson } from "../api.js";
import { clock, fileName, h, realTimeFactor, replaceChildrenKeepingFocus, replaceKeepingFocus } from "../dom.js";
import { onConnected, onJob } from "../events.js";
import { actions, progressBar, STATUSES, statusBadge } from "../jobs.js";

const PAGE_SIZE = 25;
const OTHER_SOURCES = ["api", "upload", "cli"];

export function render(main, { params }) {
  const filters = {
    status: params.get("status") || "",
    source: params.get("source") || "",
    cursor: params.get("cursor") || "",
  };
  const rows = new Map();
  const body = h("tbody");
  const empty = h("p", { class: "empty", hidden: true }, "No jobs here yet.");
  const older = h("button", { type: "button", class: "quiet", hidden: true }, "Older →");
  const newest = h("button", { type: "button", class: "quiet", hidden: !filters.cursor }, "← Newest");
  const sourceSelect = h("select", { id: "filter-source", name: "source" },
    h("option", { value: "" }, "All sources"));
  const statusSelect = h("select", { id: "filter-status", name: "status" },
    h("option", { value: "" }, "All statuses"),
    STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s)));

  const go = (changes) => {
    const next = new URLSearchParams({ ...filters, ...changes });
    for (const [name, value] of [...next]) if (!value) next.delete(name);
    location.hash = `#/jobs${next.size ? `?${next}` : ""}`;
  };
  statusSelect.addEventListener("change", () => go({ status: statusSelect.value, cursor: "" }));
  sourceSelect.addEventListener("change", () => go({ source: sourceSelect.value, cursor: "" }));
  newest.addEventListener("click", () => go({ cursor: "" }));

  main.append(
    h("h1", {}, "Jobs"),
    h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
      h("label", { for: "filter-status" }, "Status"), statusSelect,
      h("label", { for: "filter-source" }, "Source"), sourceSelect),
    h("table", { class: "jobs" },
      h("caption", { class: "visually-hidden" }, "Jobs, newest first"),
      h("thead", {}, h("tr", {}, ["ID", "Status", "File", "Source", "Progress", "Duration",
        "Speed", "Attempts", "Error", ""].map((name) => h("th", { scope: "col" }, name)))),
      body),
    empty,
    h("div", { class: "pager" }, newest, older),
  );

  getJson("/status").then((status) => {
    const inboxes = status.inboxes.map((inbox) => `inbox:${inbox.name}`);
    const choices = [...new Set([...inboxes, ...OTHER_SOURCES, filters.source].filter(Boolean))];
    for (const choice of choices) {
      sourceSelect.append(h("option", { value: choice, selected: choice === filters.source },
        choice.startsWith("inbox:") ? `inbox ${choice.slice(6)}` : choice));
    }
  }).catch(() => {});

  const matches = (job) =>
    (!filters.status || job.status === filters.status) &&
    (!filters.source || job.origin === filters.source);

  const place = (job) => {
    const existing = rows.get(job.id);
    if (existing && !matches(job)) {
      // No longer what the filter shows (a running job that finished, say).
      existing.remove();
      rows.delete(job.id);
      empty.hidden = rows.size > 0;
      return;
    }
    const row = jobRow(job, place);
    if (existing) replaceKeepingFocus(existing, row);
    else {
      // New rows belong on the first page only, and only if they are newer than its oldest.
      if (filters.cursor || !matches(job)) return;
      if (rows.size >= PAGE_SIZE && job.id < Math.min(...rows.keys())) return;
      // Newest first, by the order on screen.
      const after = [...body.children].find((tr) => Number(tr.dataset.jobId) < job.id);
      body.insertBefore(row, after ?? null);
      while (rows.size >= PAGE_SIZE) {
        const oldest = Math.min(...rows.keys());
        rows.get(oldest).remove();
        rows.delete(oldest);
      }
    }
    rows.set(job.id, row);
    empty.hidden = true;
  };

  // Events that arrive while a page loads wait for it, so that an older snapshot never
  // overwrites them; a load overtaken by a newer one is dropped.
  let loads = 0;
  let held = null;
  const receive = (job) => (held ? held.push(job) : place(job));
  const release = (apply = true) => {
    const waiting = held ?? [];
    held = null;
    if (apply) waiting.forEach(place);
    return waiting;
  };

  const load = async () => {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (filters.status) query.set("status", filters.status);
    if (filters.source) query.set("origin", filters.source);  // inbox:NAME, api, upload or cli
    if (filters.cursor) query.set("cursor", filters.cursor);
    const mine = ++loads;
    held = held ?? [];
    let page;
    try {
      page = await getJson(`/jobs?${query}`);
    } catch (error) {
      if (mine === loads) release();
      empty.textContent = `Could not load the jobs: ${error.message}`;
      empty.hidden = false;
      return;
    }
    if (mine !== loads) return;
    const waiting = release(false);
    rows.clear();
    const fresh = page.items.map((job) => {
      const row = jobRow(job, place);
      rows.set(job.id, row);
      return row;
    });
    replaceChildrenKeepingFocus(body, ...fresh);
    empty.textContent = "No jobs here yet.";
    empty.hidden = page.items.length > 0;
    older.hidden = !page.next_cursor;
    older.onclick = () => go({ cursor: page.next_cursor });
    waiting.forEach(place);
    main.dataset.loaded = "true";
  };

  load();
  const stopJobs = onJob(receive);
  const stopConnected = onConnected(() => load());
  return () => {
    stopJobs();
    stopConnected();
  };
}

function jobRow(job, onChange) {
  const factor = realTimeFactor(job);
  const cell = (label, ...content) => h("td", { "data-label": label }, ...content);
  return h("tr", { dataset: { jobId: job.id, status: job.status } },
    cell("ID", String(job.id)),
    cell("Status", statusBadge(job)),
    cell("File", h("a", { href: `#/job/${job.id}`, title: job.source_path }, fileName(job.source_path))),
    cell("Source", job.source),
    cell("Progress", progressBar(job)),
    cell("Duration", job.duration === null ? "" : clock(job.duration)),
    cell("Speed", factor === null ? "" : `${factor.toFixed(1)}×`),
    cell("Attempts", `${job.attempts}/${job.max_attempts}`),
    cell("Error", job.error ? h("span", { class: "error", title: job.error }, job.error) : ""),
    cell("Actions", actions(job, onChange)),
  );
}
