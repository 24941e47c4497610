// One job: its state (live), the audio with the transcript under the playhead, and downloads.

import { ApiError, download, getJson, request } from "../api.js";
import { clock, fileName, h, realTimeFactor, replaceChildrenKeepingFocus, when } from "../dom.js";
import { onConnected, onJob } from "../events.js";
import { actions, progressBar, statusBadge } from "../jobs.js";

const FORMATS = ["txt", "srt", "vtt", "json", "tsv"];

export function render(main, { id, params }) {
  const jobId = Number(id);
  const startAt = params.has("t") ? Number(params.get("t")) : null;
  const header = h("div", { class: "job-head" });
  const details = h("dl", { class: "details" });
  const player = h("div", { class: "player" });
  const transcript = h("div", { class: "transcript-area" });
  main.append(h("p", {}, h("a", { href: "#/jobs" }, "← Jobs")), header, details, player, transcript);

  let shown = null;
  let audio = null;
  let segments = [];

  const paint = (job) => {
    const factor = realTimeFactor(job);
    replaceChildrenKeepingFocus(
      header,
      h("h1", { title: job.source_path }, fileName(job.source_path)),
      h("div", { class: "job-state" }, statusBadge(job), progressBar(job), actions(job, paint)),
    );
    const rows = [
      ["Job", `#${job.id}`],
      ["File", job.source_path],
      ["Source", job.source],
      ["Attempts", `${job.attempts} of ${job.max_attempts}`],
      ["Language", language(job)],
      ["Model", job.options.model],
      ["Duration", job.duration === null ? null : clock(job.duration)],
      ["Speed", factor === null ? null : `${factor.toFixed(1)}× real time`],
      ["Queued", when(job.created_at)],
      ["Started", when(job.started_at)],
      ["Finished", when(job.finished_at)],
      ["Error", job.error],
      ["Note", job.note],
      ["Hotwords", job.options.hotwords],
      ["Initial prompt", job.options.initial_prompt],
      ["Subtitles", subtitleRules(job.options)],
      ["Language detection", detection(job.options)],
      ["Guards", guards(job.options)],
      ["Written", job.outputs.length ? job.outputs.join("\n") : null],
      ["Upload removed", job.source_removed_at ? removedNote(job) : null],
    ];
    details.replaceChildren(
      ...rows.filter(([, value]) => value).flatMap(([term, value]) => [
        h("dt", {}, term),
        h("dd", { class: term === "Error" ? "error" : "" }, value),
      ]),
    );
    const wasDone = shown && shown.status === "done";
    shown = job;
    if (job.status === "done" && !wasDone) showTranscript(job);
  };

  const showTranscript = async (job) => {
    await paintTranscript(job);
    await showAudio(job);
    if (startAt !== null) seek(startAt, false);
  };

  // The transcript, rendered with the speakers' names (segments carry the names; the speakers
  // list pairs each name with its label, whose place gives the speaker's colour).
  const paintTranscript = async (job) => {
    const stem = fileName(job.source_path).replace(/\.[^.]+$/, "");
    const [body, { speakers }] = await Promise.all([
      getJson(`/jobs/${job.id}/transcript?format=json`),
      getJson(`/jobs/${job.id}/speakers`),
    ]);
    segments = body.segments;
    const colour = (name) => speakers.findIndex((speaker) => speaker.name === name);
    const list = h("ol", { class: "segments", "aria-label": "Transcript" },
      segments.map((segment, index) =>
        h("li", {},
          h("button", {
            type: "button",
            class: "segment",
            dataset: { index, start: segment.start, speaker: segment.speaker },
            style: segment.speaker ? { "--speaker": hue(colour(segment.speaker)) } : null,
            "aria-label": `Play from ${clock(segment.start)}: ${segment.speaker ? `${segment.speaker}: ` : ""}${segment.text.trim()}`,
            onclick: () => seek(segment.start, true),
          },
          h("span", { class: "time" }, `${clock(segment.start)} – ${clock(segment.end)}`),
          segment.speaker ? h("span", { class: "speaker" }, segment.speaker) : null,
          h("span", { class: "text" }, segment.text.trim())))));
    transcript.replaceChildren(
      h("h2", {}, "Transcript"),
      h("div", { class: "downloads", role: "group", "aria-label": "Download the transcript" },
        h("span", {}, "Download:"),
        FORMATS.map((format) => h("button", {
          type: "button", class: "quiet", dataset: { format },
          onclick: () => download(`/jobs/${job.id}/transcript?format=${format}`, `${stem}.${format}`),
        }, format))),
      speakers.length ? timeline(speakers, segments, body.duration, seek) : null,
      speakers.length ? namesForm(job, speakers, () => paintTranscript(job)) : null,
      segments.length ? list : h("p", { class: "empty" }, "No speech was found in this file."),
    );
    if (audio) highlight(audio.currentTime, false);
  };

  const showAudio = async (job) => {
    if (job.source_removed_at) {
      player.replaceChildren(h("p", { class: "empty" }, `No audio to play: ${removedNote(job)}`));
      return;
    }
    let link;
    try {
      link = await getJson(`/jobs/${job.id}/audio-link`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      player.replaceChildren(h("p", { class: "empty" }, `No audio to play: ${error.message}`));
      return;
    }
    audio = h("audio", { controls: true, preload: "metadata", src: link.url, "aria-label": "Audio" });
    const problem = h("p", { class: "empty", hidden: true },
      "This browser cannot play this file's format. ",
      h("a", { href: link.url, download: fileName(job.source_path) }, "Download the original"));
    // A signed link lasts hours: a page left open longer asks for a fresh one, once.
    let renewed = false;
    audio.addEventListener("error", async () => {
      if (renewed) return void (problem.hidden = false);
      renewed = true;
      const at = audio.currentTime;
      try {
        audio.src = (await getJson(`/jobs/${job.id}/audio-link`)).url;
        audio.currentTime = at;
      } catch {
        problem.hidden = false;
      }
    });
    audio.addEventListener("timeupdate", () => highlight(audio.currentTime, !audio.paused));
    player.replaceChildren(audio, problem);
  };

  const seek = (seconds, play) => {
    highlight(seconds, true);
    if (!audio) return;
    audio.currentTime = seconds;
    if (play) audio.play().catch(() => {});
  };

  // The segment under the playhead; the latest that started when segments overlap.
  const highlight = (seconds, scroll) => {
    let current = -1;
    segments.forEach((segment, index) => {
      if (segment.start <= seconds + 0.01 && seconds < segment.end) current = index;
    });
    for (const button of transcript.querySelectorAll(".segment")) {
      const now = Number(button.dataset.index) === current;
      if (now && button.getAttribute("aria-current") !== "true" && scroll) {
        button.scrollIntoView({ block: "nearest" });
      }
      if (now) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  };

  // An event that arrives while the job loads is newer than what the load brings: it wins.
  let loading = false;
  let latest = null;
  const load = async () => {
    loading = true;
    latest = null;
    try {
      const job = await getJson(`/jobs/${jobId}`);
      paint(latest ?? job);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      header.replaceChildren(h("h1", {}, `Job ${id}`), h("p", { class: "error" }, error.message));
    } finally {
      loading = false;
    }
  };
  load();
  const stopJobs = onJob((job) => {
    if (job.id !== jobId) return;
    if (loading) latest = job;
    else paint(job);
  });
  const stopConnected = onConnected(() => load());
  return () => {
    stopJobs();
    stopConnected();
    if (audio) audio.pause();
  };
}

// A speaker's colour: hues far apart (the golden angle), the same for a speaker on every page.
function hue(index) {
  return `${Math.round((index * 137.5) % 360)}`;
}

// Who speaks when: one row per speaker, a bar per turn (a speaker's consecutive segments); a bar
// plays from its start.
function timeline(speakers, segments, duration, seek) {
  const turns = [];
  for (const segment of segments) {
    const last = turns[turns.length - 1];
    if (last && last.speaker === segment.speaker) last.end = segment.end;
    else turns.push({ speaker: segment.speaker, start: segment.start, end: segment.end });
  }
  const span = Math.max(duration, ...segments.map((segment) => segment.end), 1);
  return h("div", { class: "timeline", role: "group", "aria-label": "Speaker timeline" },
    speakers.map((speaker, index) =>
      h("div", { class: "timeline-row", dataset: { speaker: speaker.name }, style: { "--speaker": hue(index) } },
        h("span", { class: "timeline-name" }, speaker.name),
        h("div", { class: "timeline-track" },
          turns.filter((turn) => turn.speaker === speaker.name).map((turn) => h("button", {
            type: "button",
            class: "turn",
            style: {
              left: `${(100 * turn.start) / span}%`,
              width: `${Math.max((100 * (turn.end - turn.start)) / span, 0.3)}%`,
            },
            "aria-label": `${speaker.name} from ${clock(turn.start)} to ${clock(turn.end)}`,
            onclick: () => seek(turn.start, true),
          }))))));
}

// What a speaker's field shows: the name given, empty while it has none.
function shownName(speaker) {
  return speaker.name === speaker.label ? "" : speaker.name;
}

// The names form: one field per speaker, saved together.
function namesForm(job, speakers, repaint) {
  const fields = speakers.map((speaker) => h("label", {},
    h("span", {}, speaker.label),
    h("input", { name: speaker.label, value: shownName(speaker),
      placeholder: speaker.label, maxlength: 100, "aria-label": `Name for ${speaker.label}` })));
  const message = h("p", { class: "form-message", role: "status" });
  const form = h("form", { class: "speaker-names", "aria-label": "Speaker names",
    onsubmit: async (event) => {
      event.preventDefault();
      // Only what this page changed: a name someone else gave since it loaded stays theirs.
      const names = Object.fromEntries([...new FormData(form).entries()]
        .filter(([label, name]) => name.trim() !== shownName(speakers.find((s) => s.label === label))));
      try {
        await request(`/jobs/${job.id}/speakers`, { method: "PUT", json: { names } });
        await repaint();
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        message.textContent = error.message;
        message.classList.add("error");
      }
    } },
    h("fieldset", {}, h("legend", {}, "Speakers"), fields,
      h("button", { type: "submit" }, "Save names")),
    h("p", { class: "empty" }, "The files the job wrote show the names within seconds "
      + "(a file changed since keeps its labels)."),
    message);
  return form;
}

// The language, and whether it was given or detected (how sure, among which).
function language(job) {
  if (job.language === null) return null;
  if (job.options.language) return `${job.language} (given)`;
  const among = job.options.expected_languages.length
    ? `, among ${job.options.expected_languages.join(", ")}` : "";
  return `${job.language} (detected, probability ${job.language_probability.toFixed(2)}${among})`;
}

function detection(options) {
  if (options.language) return null;
  const windows = options.language_detection_segments;
  return `from up to ${windows} window${windows === 1 ? "" : "s"} of speech (30 s each); `
    + `a window surer than ${options.language_detection_threshold} decides`;
}

// The guards as faster-whisper takes them; the VAD's parameters only where it runs.
function guards(options) {
  const parts = [
    `compression_ratio_threshold ${options.compression_ratio_threshold}`,
    `log_prob_threshold ${options.log_prob_threshold}`,
    `no_speech_threshold ${options.no_speech_threshold}`,
    `hallucination_silence_threshold ${options.hallucination_silence_threshold || "off"}`,
    `repetition_penalty ${options.repetition_penalty}`,
    `no_repeat_ngram_size ${options.no_repeat_ngram_size || "off"}`,
  ];
  parts.push(options.vad_filter
    ? `VAD (threshold ${options.vad_threshold}, speech ≥ ${options.vad_min_speech_ms} ms, `
      + `silence ≥ ${options.vad_min_silence_ms} ms, padding ${options.vad_speech_pad_ms} ms)`
    : "VAD off");
  return parts.join("; ");
}

// The rules the job's srt and vtt cues follow (none without those formats).
function subtitleRules(options) {
  if (!options.formats.some((format) => format === "srt" || format === "vtt")) return null;
  if (!options.subtitle_rules) return "one cue per segment of the model";
  return `at most ${options.subtitle_lines} × ${options.subtitle_line_chars} characters, `
    + `${options.subtitle_min_s}–${options.subtitle_max_s} s on screen, `
    + `at most ${options.subtitle_cps} characters a second`;
}

// An upload's folder goes upload_retention_s after its job ended; the transcript stays.
function removedNote(job) {
  const on = when(job.source_removed_at);
  return `the upload (and the files written beside it) was removed on ${on}; the transcript is kept`;
}
