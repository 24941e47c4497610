// The live jobs table: filters by status and source, pages through history, and follows /events.

import { getJson } from "../api.js";
import { clock, fileName, h, realTimeFactor } from "../dom.js";
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
    (!filters.source || job.origin === filters.source || (filters.source === job.source));

  const place = (job) => {
    const row = jobRow(job, place);
    const existing = rows.get(job.id);
    if (existing) existing.replaceWith(row);
    else if (!filters.cursor && matches(job)) {
      // Newest first: a new job goes above every older one on the first page.
      const after = [...rows.keys()].find((id) => id < job.id);
      body.insertBefore(row, after === undefined ? null : rows.get(after));
      while (rows.size >= PAGE_SIZE) {
        const oldest = Math.min(...rows.keys());
        rows.get(oldest).remove();
        rows.delete(oldest);
      }
    } else return;
    rows.set(job.id, row);
    empty.hidden = true;
  };

  const load = async () => {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (filters.status) query.set("status", filters.status);
    if (filters.source.startsWith("inbox:")) query.set("inbox", filters.source.slice(6));
    else if (filters.source) query.set("source", filters.source);
    if (filters.cursor) query.set("cursor", filters.cursor);
    const page = await getJson(`/jobs?${query}`);
    rows.clear();
    body.replaceChildren();
    for (const job of page.items) {
      const row = jobRow(job, place);
      rows.set(job.id, row);
      body.append(row);
    }
    empty.hidden = page.items.length > 0;
    older.hidden = !page.next_cursor;
    older.onclick = () => go({ cursor: page.next_cursor });
    main.dataset.loaded = "true";
  };

  load();
  const stopJobs = onJob((job) => place(job));
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
