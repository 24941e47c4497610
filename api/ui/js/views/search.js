// Full-text search over transcript history; a hit opens its job at the matching segment.

import { getJson } from "../api.js";
import { clock, fileName, h } from "../dom.js";

const PAGE_SIZE = 20;

export function render(main, { params }) {
  const query = params.get("q") || "";
  const input = h("input", { id: "search-q", name: "q", type: "search", value: query,
    placeholder: "words said in a recording", required: true });
  const results = h("ol", { class: "hits", "aria-label": "Search results" });
  const status = h("p", { class: "empty", role: "status" });
  const more = h("button", { type: "button", class: "quiet", hidden: true }, "More results");
  main.append(
    h("h1", {}, "Search transcripts"),
    h("form", { role: "search", class: "search", onsubmit: (event) => {
      event.preventDefault();
      location.hash = `#/search?${new URLSearchParams({ q: input.value.trim() })}`;
    } }, h("label", { for: "search-q" }, "Find"), input, h("button", { type: "submit" }, "Search")),
    status, results, more);
  if (!query) {
    input.focus();
    return;
  }

  let offset = 0;
  const fetchPage = async () => {
    const page = await getJson(`/transcripts/search?${new URLSearchParams({
      q: query, limit: String(PAGE_SIZE), offset: String(offset) })}`);
    for (const hit of page.items) results.append(hitItem(hit));
    offset += page.items.length;
    more.hidden = page.items.length < PAGE_SIZE;
    status.textContent = offset ? `${offset} matching segment${offset === 1 ? "" : "s"}${more.hidden ? "" : " so far"}` : `Nothing said matches “${query}”.`;
  };
  more.addEventListener("click", fetchPage);
  fetchPage().catch((error) => (status.textContent = error.message));
}

function hitItem(hit) {
  // The snippet comes HTML-escaped from the API, with only <mark> added around the matches.
  const snippet = h("span", { class: "snippet" });
  snippet.innerHTML = hit.snippet;
  return h("li", {},
    h("a", { href: `#/job/${hit.job_id}?t=${hit.start}`, class: "hit" },
      h("span", { class: "hit-file" }, fileName(hit.source_path)),
      h("span", { class: "time" }, hit.speaker ? `${hit.speaker}, at ${clock(hit.start)}` : `at ${clock(hit.start)}`),
      snippet));
}
