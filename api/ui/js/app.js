// The dashboard: signs in when the service has a key, then routes #/view?params to a view.

import { getJson, key, Unauthorized, whenUnauthorized } from "./api.js";
import { connect, disconnect } from "./events.js";
import { startGlance, stopGlance } from "./glance.js";
import * as health from "./views/health.js";
import * as job from "./views/job.js";
import * as jobs from "./views/jobs.js";
import * as search from "./views/search.js";
import * as submit from "./views/submit.js";

const VIEWS = { jobs, job, search, submit, health };
let leaveView = () => {};
let signedIn = false;

export function route() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, id] = path.split("/");
  return { name: VIEWS[name] ? name : "jobs", id, params: new URLSearchParams(query) };
}

function show() {
  if (!signedIn) return;
  leaveView();
  const { name, id, params } = route();
  const main = document.getElementById("main");
  main.replaceChildren();
  for (const link of document.querySelectorAll("#nav a")) {
    const current = link.dataset.view === name || (name === "job" && link.dataset.view === "jobs");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  leaveView = VIEWS[name].render(main, { id, params }) || (() => {});
}

function askForKey(problem) {
  signedIn = false;
  leaveView();
  leaveView = () => {};
  disconnect();
  stopGlance();
  for (const id of ["nav", "glance", "live", "sign-out"]) document.getElementById(id).hidden = true;
  document.getElementById("main").replaceChildren();
  document.getElementById("sign-in").hidden = false;
  document.getElementById("sign-in-error").textContent = problem || "";
  document.getElementById("api-key").focus();
}

async function start() {
  // /options answers only with the right key (or with none when the service has none).
  try {
    await getJson("/options");
  } catch (error) {
    if (error instanceof Unauthorized) return;
    document.getElementById("main").textContent = `The service did not answer: ${error.message}`;
    return;
  }
  signedIn = true;
  document.getElementById("sign-in").hidden = true;
  for (const id of ["nav", "glance", "live"]) document.getElementById(id).hidden = false;
  document.getElementById("sign-out").hidden = !key.get();
  connect();
  startGlance(document.getElementById("glance"));
  show();
}

whenUnauthorized((detail) => {
  const hadKey = Boolean(key.get());
  key.clear();
  askForKey(hadKey ? detail : "");
});

document.getElementById("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("api-key");
  key.set(input.value.trim());
  input.value = "";
  start();
});

document.getElementById("sign-out").addEventListener("click", () => {
  key.clear();
  askForKey("");
});

// The hash is the router's: the skip link moves focus without changing it.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("main").focus();
});

window.addEventListener("hashchange", () => {
  // A filter that changed the address keeps the focus (arrow keys step through a select);
  // any other navigation moves it to the new content.
  const focusedId = document.activeElement?.id;
  show();
  const same = focusedId && document.getElementById(focusedId);
  if (same && document.getElementById("main").contains(same)) same.focus();
  else document.getElementById("main").focus({ preventScroll: true });
});
start();
