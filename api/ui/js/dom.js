// Building elements without innerHTML: every value from the API goes in as text.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
    else if (name === "style") for (const [property, setting] of Object.entries(value)) element.style.setProperty(property, setting);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export function clock(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const total = Math.max(0, seconds);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const rest = (total % 60).toFixed(1).padStart(4, "0");
  const mm = String(minutes).padStart(2, "0");
  return hours ? `${hours}:${mm}:${rest}` : `${mm}:${rest}`;
}

export function fileName(path) {
  return path.split(/[\\/]/).pop() || path;
}

export function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString();
}

// Audio seconds per second of work on this job, once it has both.
export function realTimeFactor(job) {
  if (!job.duration || !job.started_at || !job.finished_at) return null;
  const spent = (new Date(job.finished_at) - new Date(job.started_at)) / 1000;
  return spent > 0 ? job.duration / spent : null;
}

export function announce(message) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  // A fresh node, so screen readers speak a repeated message again.
  requestAnimationFrame(() => (region.textContent = message));
}

// Live updates replace elements; a control the visitor has focused must not vanish under them.
// Focus moves to its counterpart in the new content (same id, aria-label or href), else to the
// first link or button there.
export function replaceKeepingFocus(old, replacement) {
  const focused = document.activeElement;
  const had = focused && old.contains(focused);
  old.replaceWith(replacement);
  if (had) focusTwin(focused, replacement);
}

export function replaceChildrenKeepingFocus(container, ...children) {
  const focused = document.activeElement;
  const had = focused && focused !== container && container.contains(focused);
  container.replaceChildren(...children);
  if (had && !container.contains(focused)) focusTwin(focused, container);
}

function focusTwin(focused, within) {
  const same = (name) => {
    const value = focused.getAttribute(name);
    return value && within.querySelector(`[${name}="${CSS.escape(value)}"]`);
  };
  const twin = same("id") || same("aria-label") || same("href") || within.querySelector("a, button");
  if (twin) twin.focus();
}
