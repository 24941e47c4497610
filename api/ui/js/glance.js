// The strip under the header: workers, queue, audio done and speed, refreshed from /status.

import { getJson } from "./api.js";
import { h } from "./dom.js";
import { onJob } from "./events.js";

const REFRESH_MS = 3000;
// A burst of job events (progress) refreshes once, not once per event.
const SETTLE_MS = 300;
let timer = null;
let soon = null;
let stopFollowing = () => {};

export function startGlance(section) {
  stopGlance();
  const refresh = async () => {
    try {
      section.replaceChildren(...figures(await getJson("/status")));
    } catch {
      // Shown again at the next refresh; a 401 has already brought the key prompt.
    }
  };
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
  stopFollowing = onJob(() => {
    clearTimeout(soon);
    soon = setTimeout(refresh, SETTLE_MS);
  });
}

export function stopGlance() {
  clearInterval(timer);
  clearTimeout(soon);
  stopFollowing();
  timer = null;
}

export function figures(status) {
  const workers = status.workers;
  const figure = (label, value, name) =>
    h("div", { class: "figure", dataset: { figure: name } }, h("span", {}, label), h("strong", {}, value));
  return [
    figure(
      "Workers",
      workers ? `${workers.busy} busy · ${workers.idle} idle${workers.up < workers.size ? ` · ${workers.size - workers.up} down` : ""}` : "none here",
      "workers",
    ),
    figure("Queued", String(status.queue_depth), "queue"),
    figure("Running", String(status.jobs.running ?? 0), "running"),
    figure("Audio done", `${(status.audio_s / 3600).toFixed(2)} h`, "audio"),
    figure("Speed", status.real_time_factor ? `${status.real_time_factor.toFixed(1)}× real time` : "–", "speed"),
  ];
}
