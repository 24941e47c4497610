// Submit a file: an upload (with its progress) or a path on the server, with the job options
// preset to the service's defaults from /options.

import { ApiError, getJson, request, Unauthorized, upload } from "../api.js";
import { announce, h } from "../dom.js";

export function render(main) {
  const form = h("form", { class: "submit" });
  main.append(h("h1", {}, "Submit a file"), form);
  getJson("/options").then((options) => build(form, options));
}

function build(form, { defaults, formats, tasks, languages, models, max_upload_bytes: maxBytes }) {
  const field = (id, label, control, hint) =>
    h("div", { class: "field" }, h("label", { for: id }, label), control, hint && h("small", {}, hint));
  const fileInput = h("input", { id: "submit-file", name: "file", type: "file",
    accept: "audio/*,video/*" });
  const pathInput = h("input", { id: "submit-path", name: "path", type: "text",
    placeholder: "/srv/inbox/talk.mp3", autocomplete: "off" });
  const language = h("select", { id: "submit-language", name: "language" },
    h("option", { value: "" }, defaults.language ? "service default" : "detect"),
    Object.entries(languages).map(([code, name]) =>
      h("option", { value: code, selected: code === defaults.language }, `${name} (${code})`)));
  // The models jobs may name (the models setting), default first; shown when there is a choice.
  const model = h("select", { id: "submit-model", name: "model" },
    models.map((name) => h("option", { value: name, selected: name === (defaults.model ?? models[0]) },
      name)));
  const task = h("fieldset", { class: "choices" }, h("legend", {}, "Task"),
    tasks.map((name) => h("label", {}, h("input", { type: "radio", name: "task", value: name,
      checked: name === defaults.task }), name)));
  const formatBoxes = h("fieldset", { class: "choices" }, h("legend", {}, "Formats"),
    formats.map((name) => h("label", {}, h("input", { type: "checkbox", name: "formats",
      value: name, checked: defaults.formats.includes(name) }), name)));
  const vad = h("input", { id: "submit-vad", name: "vad_filter", type: "checkbox",
    checked: defaults.vad_filter });
  const words = h("input", { id: "submit-words", name: "word_timestamps", type: "checkbox",
    checked: defaults.word_timestamps });
  // Vocabulary: names and jargon the model should spell as given.
  const hotwords = h("input", { id: "submit-hotwords", name: "hotwords", type: "text",
    value: defaults.hotwords ?? "", placeholder: "Kubernetes, Siobhan Nguyen", maxlength: 2000,
    autocomplete: "off" });
  const prompt = h("input", { id: "submit-prompt", name: "initial_prompt", type: "text",
    value: defaults.initial_prompt ?? "", maxlength: 2000, autocomplete: "off" });
  // Subtitle rules: the checkbox and a number field per rule, preset to the service's.
  const rulesOn = h("input", { id: "submit-subtitle-rules", name: "subtitle_rules",
    type: "checkbox", checked: defaults.subtitle_rules });
  const number = (name, label, step, min, max) => field(`submit-${name}`, label,
    h("input", { id: `submit-${name}`, name, type: "number", step, min, max,
      value: defaults[name], required: true }));
  const rules = h("fieldset", { class: "subtitle-rules" }, h("legend", {}, "Subtitles (srt, vtt)"),
    h("label", { class: "check" }, rulesOn, "Cues made for reading (off: one cue per segment)"),
    number("subtitle_line_chars", "Characters a line", "1", 10, 200),
    number("subtitle_lines", "Lines a cue", "1", 1, 4),
    number("subtitle_min_s", "Shortest on screen (s)", "any", 0, 10),
    number("subtitle_max_s", "Longest on screen (s)", "any", 0.1, 60),
    number("subtitle_cps", "Characters a second at most", "any", 1, 100));
  // Language detection: the languages it may choose, and how long it listens.
  const expected = h("input", { id: "submit-expected-languages", name: "expected_languages",
    type: "text", value: (defaults.expected_languages ?? []).join(", "), placeholder: "de, en",
    autocomplete: "off" });
  const detection = h("fieldset", { class: "language-detection" },
    h("legend", {}, "Language detection (when no language is chosen)"),
    field("submit-expected-languages", "Expected languages", expected,
      "Codes, comma-separated: detection chooses among them."),
    number("language_detection_segments", "Windows of speech (30 s each)", "1", 1, 10),
    number("language_detection_threshold", "A window this sure decides", "any", 0, 1));
  // Guards against hallucination: faster-whisper's own options, preset to the service's.
  const guards = h("details", { class: "guards" },
    h("summary", {}, "Guards against hallucination"),
    number("compression_ratio_threshold", "Compression ratio above which a window is redone", "any", 0, 100),
    number("log_prob_threshold", "Mean log-probability below which a window is redone", "any", -100, 0),
    number("no_speech_threshold", "Silence probability above which an unsure window is skipped", "any", 0, 1),
    number("hallucination_silence_threshold", "Skip silences longer than this around made-up text (s, 0: off)", "any", 0, 60),
    number("repetition_penalty", "Repetition penalty (1: none)", "any", 0.01, 10),
    number("no_repeat_ngram_size", "No run of this many tokens twice (0: off)", "1", 0, 20),
    number("vad_threshold", "VAD: how sure of speech", "any", 0, 1),
    number("vad_min_speech_ms", "VAD: shortest speech kept (ms)", "1", 0, 60000),
    number("vad_min_silence_ms", "VAD: silence that splits speech (ms)", "1", 0, 600000),
    number("vad_speech_pad_ms", "VAD: kept around speech (ms)", "1", 0, 10000));
  const bar = h("progress", { max: "100", value: "0", hidden: true, "aria-label": "Upload progress" });
  const outcome = h("p", { class: "outcome", role: "status" });
  const send = h("button", { type: "submit" }, "Submit");

  form.append(
    h("fieldset", { class: "what" }, h("legend", {}, "File"),
      field("submit-file", "Upload a file", fileInput,
        `Up to ${(maxBytes / 1024 ** 3).toFixed(1)} GiB.`),
      h("p", { class: "or" }, "or"),
      field("submit-path", "A path on the server", pathInput,
        "Inside one of the service's inboxes or allowed folders.")),
    h("fieldset", {}, h("legend", {}, "Options"),
      field("submit-language", "Language", language),
      models.length > 1 && field("submit-model", "Model", model, "As the service's models setting names them."),
      task, formatBoxes,
      h("label", { class: "check" }, vad, "Skip silence (VAD)"),
      h("label", { class: "check" }, words, "Word timestamps"),
      field("submit-hotwords", "Hotwords", hotwords, "Terms the model should expect, comma-separated."),
      field("submit-prompt", "Initial prompt", prompt, "Text that primes the model (style, spelling).")),
    rules, detection, guards, send, bar, outcome);

  const expectedCodes = () => expected.value.split(",").map((code) => code.trim()).filter(Boolean);
  const chosen = () => ({
    language: language.value,
    ...(model.value !== models[0] ? { model: model.value } : {}),
    task: form.querySelector("input[name=task]:checked")?.value ?? defaults.task,
    formats: [...form.querySelectorAll("input[name=formats]:checked")].map((box) => box.value),
    vad_filter: vad.checked,
    word_timestamps: words.checked,
    ...(hotwords.value.trim() ? { hotwords: hotwords.value.trim() } : {}),
    ...(prompt.value.trim() ? { initial_prompt: prompt.value.trim() } : {}),
    subtitle_rules: rulesOn.checked,
    ...(expectedCodes().length ? { expected_languages: expectedCodes() } : {}),
    ...Object.fromEntries([rules, detection, guards]
      .flatMap((group) => [...group.querySelectorAll("input[type=number]")])
      .map((input) => [input.name, Number(input.value)])),
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const options = chosen();
    const file = fileInput.files[0];
    const path = pathInput.value.trim();
    if (!file && !path) return show(outcome, "Choose a file to upload or enter a path.", true);
    if (file && path) return show(outcome, "Either upload a file or enter a path, not both.", true);
    if (!options.formats.length) return show(outcome, "Choose at least one format.", true);
    send.disabled = true;
    try {
      const job = file ? await sendUpload(file, options, bar) : await sendPath(path, options);
      fileInput.value = "";
      pathInput.value = "";
      outcome.replaceChildren(`Queued as job ${job.id}: `,
        h("a", { href: `#/job/${job.id}`, class: "job-link" }, "follow it"));
      outcome.classList.remove("error");
      announce(`Queued as job ${job.id}`);
    } catch (error) {
      if (error instanceof Unauthorized) return;
      if (!(error instanceof ApiError)) throw error;
      show(outcome, error.message, true);
    } finally {
      send.disabled = false;
    }
  });
}

function show(outcome, message, isError) {
  outcome.textContent = message;
  outcome.classList.toggle("error", isError);
}

async function sendPath(path, options) {
  const body = { path, ...options, language: options.language || null };
  return (await request("/transcribe", { method: "POST", json: body })).json();
}

function sendUpload(file, options, bar) {
  const form = new FormData();
  for (const [name, value] of Object.entries(options)) {
    form.append(name, Array.isArray(value) ? value.join(",") : String(value));
  }
  form.append("file", file);
  bar.hidden = false;
  bar.value = 0;
  return upload(form, (fraction) => (bar.value = Math.round(fraction * 100)));
}
