"""Synthetic multi-speaker conversations, spoken by espeak-ng voices and mixed here, with the
reference of who speaks when, for the speaker benchmark (bench/diarization.py) and the fixture
tests/fixtures/conversation.flac.

    .venv/bin/python bench/conversations.py OUTDIR [--scene NAME ...] [--flac]

Writes OUTDIR/SCENE.wav (16 kHz mono 16-bit; .flac with --flac) and OUTDIR/SCENE.json:
{"turns": [[start_s, end_s, "A"], ...], "texts": [one per turn], "voices": {"A": "en-us+m7"},
"duration": seconds}. Scenes:

- turns: three voices taking turns 0.4 s apart, short answers ("Yes.", "Right.") among them
- overlap: the same kind of talk, some turns starting 0.5 to 1 s before the previous one ends
- tight: three voices 0.1 s apart
- four: four voices; en-us+m3 is nearer the others for the embedder (a harder case)
- one_voice: one voice, pauses between sentences (one speaker must come out)
- long: about 3 minutes of three voices, for the cost

Each turn is espeak-ng's output resampled by sox (-R: the same bytes on every run with the same
tool versions) and trimmed to its first and last audible sample, so that a reference turn starts
and ends where its voice does (to a sample, not to espeak's trailing silence).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RATE = 16_000
WORDS_PER_MINUTE = 160
# A voice's samples below this (about -60 dBFS) before its first or after its last louder one are
# silence: espeak-ng pads its output with a third of a second of it.
AUDIBLE = 1e-3
# Every turn at this RMS, so that no voice is easier to hear (and no mix clips); the mix is scaled
# down only where overlapping voices would pass PEAK.
TARGET_RMS = 0.08
PEAK = 0.9
# sox's output format for a voice: raw little-endian 32-bit floats.
FLOAT_RAW = ["-t", "raw", "-e", "floating-point", "-b", "32", "-L"]

VOICES = {"A": "en-us+m7", "B": "en-us+f4", "C": "en-us+klatt4", "D": "en-us+m3"}

Floats = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True)
class Line:
    """One turn of a script: who says what, and how long after the previous turn ends (negative:
    that much before, an overlap)."""

    speaker: str
    text: str
    gap: float = 0.4


LIBRARY = [
    Line("A", "Good morning everyone, let's talk about the new opening hours for the library."),
    Line("B", "I think we should stay open later on Thursdays, students come after school."),
    Line("C", "Yes."),
    Line("A", "Do we have enough staff for the evening shift?"),
    Line("C", "Not yet, but two volunteers offered to help in the reading room."),
    Line("B", "Right."),
    Line("A", "Then let's try it for one month and count the visitors."),
    Line("B", "I will put a notice by the front desk and on the website."),
    Line("C", "And I can order more chairs for the children's corner."),
    Line("A", "Great, thank you all."),
]

GARDEN = [
    Line("A", "The tomatoes did really well this year, we had more than we could eat."),
    Line("B", "Mine were fine until the slugs found them in August."),
    Line("C", "Have you tried putting copper tape around the beds?", gap=-0.8),
    Line("B", "No, does that actually work?"),
    Line("C", "It helped a little, but the beer traps worked much better."),
    Line("A", "Right.", gap=-0.6),  # said while the other still speaks
    Line("A", "Next spring I want to plant runner beans along the fence."),
    Line("B", "Beans need a lot of water, so put them close to the tap.", gap=-1.0),
    Line("C", "Yes."),
    Line("A", "Good idea, and the herbs can go in pots by the kitchen door."),
    Line("C", "I'll bring you some mint cuttings next week.", gap=-0.5),
    Line("B", "Be careful, mint grows everywhere if you let it."),
]

BUDGET = [
    Line("A", "The budget for next year is almost ready.", gap=0.1),
    Line("B", "How much did the travel costs go up?", gap=0.1),
    Line("A", "About twelve percent, mostly because of train tickets.", gap=0.1),
    Line("C", "That's more than we planned for.", gap=0.1),
    Line("B", "Could we hold some of the meetings online instead?", gap=0.1),
    Line("C", "Sure.", gap=0.1),
    Line("A", "That would save money, but some clients prefer to meet in person.", gap=0.1),
    Line("B", "Then let's keep the client visits and move the internal meetings online.", gap=0.1),
    Line("C", "Agreed, I'll update the spreadsheet tonight.", gap=0.1),
    Line("A", "Okay.", gap=0.1),
    Line("B", "And please send it to me before Friday.", gap=0.1),
]

SCHOOL_TRIP = [
    Line("A", "We need to decide where the class goes for the spring trip."),
    Line("D", "The science museum has a new exhibition about the ocean."),
    Line("B", "The children went to a museum last year, what about the farm?"),
    Line("C", "The farm is cheaper, and the bus takes only forty minutes."),
    Line("D", "Right."),
    Line("A", "How many parents can come along to help?"),
    Line("B", "Six have said yes so far."),
    Line("D", "That should be enough for two groups."),
    Line("C", "I will call the farm tomorrow and ask about lunch."),
    Line("A", "Thanks, then the farm it is."),
]

STORY = [
    Line("B", "Once upon a time there was a lighthouse keeper who lived alone on a small island."),
    Line("B", "Every evening he climbed the stairs and lit the great lamp at the top.", gap=0.7),
    Line("B", "Ships passed far away, and none of them ever stopped.", gap=0.5),
    Line("B", "One stormy night a little boat came close to the rocks.", gap=0.9),
    Line("B", "The keeper ran down with a rope and a lantern.", gap=0.4),
    Line("B", "Inside the boat was a girl holding a very wet cat.", gap=0.6),
    Line("B", "They stayed with him until the sea was calm again.", gap=0.8),
    Line("B", "From then on, the girl visited every summer.", gap=0.5),
]

# Lines of the long conversation, beyond the scenes' own.
MORE = [
    "The printer on the second floor is broken again.",
    "Has anyone seen the keys to the storage room?",
    "We should ask the council for a grant before the end of March.",
    "Let's move the book sale to the weekend, more families can come then.",
    "The new shelves arrive on Tuesday morning.",
    "Sounds good.",
    "Could you send me the minutes of the last meeting?",
    "I planted sunflowers by the wall and they are taller than me now.",
    "Water the seedlings in the evening, not at noon.",
    "The accountant wants the receipts by the fifteenth.",
    "Exactly.",
    "Maybe we can share a van with the school next door.",
]
LONG_S = 180.0


@dataclass(frozen=True)
class Scene:
    lines: list[Line]
    voices: dict[str, str]


SCENES = ("turns", "overlap", "tight", "four", "one_voice", "long")


def scene(name: str) -> Scene:
    three = {speaker: VOICES[speaker] for speaker in "ABC"}
    scripts = {"turns": LIBRARY, "overlap": GARDEN, "tight": BUDGET}
    if name in scripts:
        return Scene(scripts[name], three)
    if name == "four":
        return Scene(SCHOOL_TRIP, dict(VOICES))
    if name == "one_voice":
        return Scene(STORY, {"B": VOICES["B"]})
    if name == "long":  # built on demand: it speaks its lines to measure them
        return Scene(long_lines(three), three)
    raise ValueError(f"no scene {name!r}; scenes: {', '.join(SCENES)}")


def long_lines(voices: dict[str, str]) -> list[Line]:
    """About LONG_S seconds of talk: the three-voice scripts' lines and MORE, said again by other
    voices in each round, with gaps of 0.1 to 0.8 s and now and then an overlap."""
    pool = [(line.speaker, line.text) for line in LIBRARY + GARDEN + BUDGET]
    pool += [("ABC"[i % 3], text) for i, text in enumerate(MORE)]
    rng = random.Random(7)  # fixed: the same file every time
    lines: list[Line] = []
    seconds = 0.0
    shift = 0
    while seconds < LONG_S:
        for speaker, text in pool:
            name = "ABC"[("ABC".index(speaker) + shift) % 3]
            if lines and lines[-1].speaker == name:  # one voice's two lines are one turn
                name = "ABC"[("ABC".index(name) + 1) % 3]
            gap = -rng.uniform(0.5, 1.0) if rng.random() < 0.1 else rng.uniform(0.1, 0.8)
            lines.append(Line(name, text, round(gap, 2)))
            seconds += spoken(voices[name], text).shape[0] / RATE + max(gap, 0.0)
            if seconds >= LONG_S:
                break
        shift += 1
    return lines


@functools.cache
def spoken(voice: str, text: str) -> Floats:
    """The text in that voice at 16 kHz, trimmed to its audible samples, at TARGET_RMS."""
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(WORDS_PER_MINUTE), "-w", str(raw), text],
            check=True,
        )
        # Floats out: no dither, no rounding before the mix.
        converted = subprocess.run(
            ["sox", "-R", str(raw), *FLOAT_RAW, "-c", "1", "-r", str(RATE), "-"],
            check=True,
            capture_output=True,
        ).stdout
    samples = np.frombuffer(converted, dtype="<f4").astype(np.float32)
    audible = np.flatnonzero(np.abs(samples) > AUDIBLE * np.abs(samples).max())
    samples = samples[audible[0] : audible[-1] + 1]
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    trimmed: Floats = (samples * (TARGET_RMS / rms)).astype(np.float32)
    return trimmed


def render(script: Scene) -> tuple[Floats, list[tuple[float, float, str]], list[str]]:
    """The mixed samples, the reference turns (seconds) and the texts, one per turn. A turn
    starts `gap` after the latest end so far (a short turn said over a long one ends before it)."""
    placed: list[tuple[int, Floats, str, str]] = []
    latest = 0  # samples: the end of the last turn heard so far
    start = int(0.5 * RATE)  # half a second of silence before the first voice
    for line in script.lines:
        audio = spoken(script.voices[line.speaker], line.text)
        if placed:
            previous_start, previous, _, _ = placed[-1]
            # An overlap never starts before the previous turn does (a short one is talked over).
            start = max(latest + int(line.gap * RATE), previous_start + previous.shape[0] // 3)
        placed.append((start, audio, line.speaker, line.text))
        latest = max(latest, start + audio.shape[0])
    mix = np.zeros(latest + int(0.5 * RATE), np.float32)
    for start, audio, _, _ in placed:
        mix[start : start + audio.shape[0]] += audio
    peak = float(np.abs(mix).max())
    if peak > PEAK:
        mix *= PEAK / peak
    turns = [
        (round(start / RATE, 4), round((start + audio.shape[0]) / RATE, 4), speaker)
        for start, audio, speaker, _ in placed
    ]
    return mix, turns, [text for _, _, _, text in placed]


def write_wav(path: Path, samples: Floats) -> None:
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())


def make(name: str, folder: Path, flac: bool = False) -> tuple[Path, Path]:
    """Writes the scene's audio and reference into folder; returns both paths."""
    made = scene(name)
    samples, turns, texts = render(made)
    folder.mkdir(parents=True, exist_ok=True)
    audio = folder / f"{name}.wav"
    write_wav(audio, samples)
    if flac:  # lossless: the same samples, a third of the bytes
        compressed = audio.with_suffix(".flac")
        subprocess.run(["sox", "-R", str(audio), str(compressed)], check=True)
        audio.unlink()
        audio = compressed
    reference = folder / f"{name}.json"
    document = {
        "turns": [list(turn) for turn in turns],
        "texts": texts,
        "voices": {speaker: made.voices[speaker] for speaker in sorted(made.voices)},
        "duration": round(samples.shape[0] / RATE, 4),
    }
    reference.write_text(_json(document))
    return audio, reference


def _json(document: dict[str, Any]) -> str:
    """Indented JSON with a turn (or text) a line: small diffs when a scene changes."""
    lines = ["{"]
    for index, (key, value) in enumerate(document.items()):
        if isinstance(value, list):
            items = ",\n".join(f"    {json.dumps(item)}" for item in value)
            text = f"[\n{items}\n  ]"
        else:
            text = json.dumps(value)
        lines.append(f"  {json.dumps(key)}: {text}{',' if index < len(document) - 1 else ''}")
    return "\n".join([*lines, "}"]) + "\n"


def load_reference(path: Path) -> list[tuple[float, float, str]]:
    """The reference turns of a scene's JSON file."""
    document = json.loads(path.read_text())
    return [(float(start), float(end), str(speaker)) for start, end, speaker in document["turns"]]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--scene", action="append", choices=SCENES, dest="scenes")
    parser.add_argument("--flac", action="store_true", help="FLAC instead of WAV")
    args = parser.parse_args(argv)
    for name in args.scenes or SCENES:
        audio, reference = make(name, args.outdir, args.flac)
        document = json.loads(reference.read_text())
        speakers = len(document["voices"])
        print(
            f"{audio}: {document['duration']:.1f} s, {len(document['turns'])} turns, {speakers} voices"
        )


if __name__ == "__main__":
    main()
