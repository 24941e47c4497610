// /events read with fetch rather than EventSource, which cannot send the API key. One stream
// for the whole page; views subscribe to it. After every (re)connection the "subscribed" comment
// arrives and listeners reload, so nothing that changed while disconnected is missed.

import { authHeaders } from "./api.js";

const RETRY_MAX_MS = 15_000;
const jobListeners = new Set();
const connectListeners = new Set();
let controller = null;

export function onJob(listener) {
  jobListeners.add(listener);
  return () => jobListeners.delete(listener);
}

export function onConnected(listener) {
  connectListeners.add(listener);
  return () => connectListeners.delete(listener);
}

export function connect() {
  disconnect();
  controller = new AbortController();
  follow(controller.signal);
}

export function disconnect() {
  if (controller) controller.abort();
  controller = null;
}

async function follow(signal) {
  let delay = 500;
  while (!signal.aborted) {
    try {
      const response = await fetch("/events", {
        headers: { ...authHeaders(), Accept: "text/event-stream" },
        signal,
      });
      if (response.ok) {
        setLive(true);
        delay = 500;
        await read(response.body, signal);
      }
    } catch {
      // Aborted, or the service went away: retried below unless aborted.
    }
    setLive(false);
    if (signal.aborted) return;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }
}

async function read(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  while (!signal.aborted) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    // A "\r\n" may be split across chunks: a trailing "\r" waits for what follows.
    const whole = buffer.endsWith("\r") ? buffer.slice(0, -1) : buffer;
    const rest = buffer.slice(whole.length);
    buffer = whole.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      dispatch(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
    buffer += rest;
  }
}

function dispatch(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) {
      if (line.slice(1).trim() === "subscribed") connectListeners.forEach(safely);
      continue;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  const job = JSON.parse(data.join("\n"));
  jobListeners.forEach((listener) => safely(listener, job, event));
}

// One view's mistake must not cut the stream for the others.
function safely(listener, ...args) {
  try {
    listener(...args);
  } catch (error) {
    console.error(error);
  }
}

function setLive(live) {
  const badge = document.getElementById("live");
  badge.textContent = live ? "live" : "reconnecting…";
  badge.dataset.live = String(live);
}
