// The public JSON API, with the API key (if the service has one) kept in this browser until
// sign-out. Every request goes through here, so a 401 anywhere brings the key prompt back.

const KEY_STORAGE = "whisper-transcriber.api-key";

export class Unauthorized extends Error {}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export const key = {
  get: () => localStorage.getItem(KEY_STORAGE),
  set: (value) => localStorage.setItem(KEY_STORAGE, value),
  clear: () => localStorage.removeItem(KEY_STORAGE),
};

export function authHeaders() {
  const value = key.get();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

export async function request(path, { method = "GET", json, headers = {}, signal } = {}) {
  const init = { method, signal, headers: { ...authHeaders(), ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    onUnauthorized(await detailOf(response));
    throw new Unauthorized("the API key is missing or wrong");
  }
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  return response;
}

export async function getJson(path, options) {
  return (await request(path, options)).json();
}

export async function detailOf(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// Uploads go through XMLHttpRequest: fetch cannot report upload progress.
export function upload(form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/transcribe");
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let body = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = { detail: `${xhr.status} ${xhr.statusText}` };
      }
      if (xhr.status === 401) {
        onUnauthorized(body.detail);
        reject(new Unauthorized(body.detail));
      } else if (xhr.status >= 400) reject(new ApiError(xhr.status, body.detail));
      else resolve(body);
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "the upload was interrupted")));
    xhr.send(form);
  });
}

// A transcript or file saved by the browser; fetched first, since a plain link cannot carry the key.
export async function download(path, name) {
  const blob = await (await request(path)).blob();
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
