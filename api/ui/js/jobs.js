// What the jobs table and the job page share: badges, progress, actions.

import { ApiError, request } from "./api.js";
import { announce, h } from "./dom.js";

export const STATUSES = ["queued", "running", "done", "failed", "cancelled"];

export function statusBadge(job) {
  return h("span", { class: `badge ${job.status}`, dataset: { status: job.status } }, job.status);
}

export function progressBar(job) {
  const percent = Math.round((job.status === "done" ? 1 : job.progress) * 100);
  return h(
    "span",
    { class: "progress" },
    h("progress", { max: "100", value: String(percent), "aria-label": `Job ${job.id} progress` }),
    h("span", { class: "percent" }, `${percent}%`),
  );
}

// Cancel for a job still to finish, retry for one that ended without transcripts, run again
// (a new job of the same file and options) for any that ended; the page then shows the new job.
export function actions(job, onChange) {
  const act = async (label, path, method) => {
    try {
      const response = await request(path, { method });
      onChange(await response.json());
      announce(`Job ${job.id}: ${label.toLowerCase()} asked`);
    } catch (error) {
      if (error instanceof ApiError) announce(`Job ${job.id}: ${error.message}`);
      else throw error;
    }
  };
  const buttons = [];
  if (job.status === "queued" || job.status === "running") {
    buttons.push(
      h("button", { type: "button", class: "quiet", "aria-label": `Cancel job ${job.id}`,
        onclick: () => act("Cancel", `/jobs/${job.id}`, "DELETE") }, "Cancel"),
    );
  }
  // An upload the retention removed cannot run again: it must be sent again.
  const runnable = !job.source_removed_at;
  if (runnable && (job.status === "failed" || job.status === "cancelled")) {
    buttons.push(
      h("button", { type: "button", class: "quiet", "aria-label": `Retry job ${job.id}`,
        onclick: () => act("Retry", `/jobs/${job.id}/retry`, "POST") }, "Retry"),
    );
  }
  if (runnable && (job.status === "done" || job.status === "failed" || job.status === "cancelled")) {
    buttons.push(
      h("button", { type: "button", class: "quiet", "aria-label": `Run job ${job.id} again`,
        onclick: () => runAgain(job) }, "Run again"),
    );
  }
  return h("span", { class: "actions" }, buttons);
}

async function runAgain(job) {
  try {
    const response = await request(`/jobs/${job.id}/run-again`, { method: "POST" });
    const created = await response.json();
    announce(`Job ${job.id}: run again as job ${created.id}`);
    location.hash = `#/job/${created.id}`;
  } catch (error) {
    if (error instanceof ApiError) announce(`Job ${job.id}: ${error.message}`);
    else throw error;
  }
}
