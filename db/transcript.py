"""The transcript as plain values: what the engine produces and what outputs and the database store.

In db/, the bottom layer, as the job store keeps it; the worker, the API and the service read it
from here (tests/integration/test_import_rules.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float
    speaker: str | None = None  # with speaker labels (diarize): who says it


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] | None = None
    speaker: str | None = None  # with speaker labels (diarize): "Speaker 1", ... as they appear
    # faster-whisper's decoding details, for clients that show them (OpenAI's verbose_json).
    seek: int | None = None
    tokens: tuple[int, ...] | None = None
    temperature: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None


DETAILS = ("seek", "tokens", "temperature", "avg_logprob", "compression_ratio", "no_speech_prob")


@dataclass(frozen=True)
class Transcript:
    language: str
    language_probability: float
    duration: float
    segments: tuple[Segment, ...] = field(default_factory=tuple)
    # Why something the job asked for is missing (speaker labels that could not be made): the
    # job's note, not part of the stored transcript.
    note: str | None = None
    # Names people gave speakers, by label ({"Speaker 1": "Ada"}); segments keep the labels.
    speaker_names: Mapping[str, str] = field(default_factory=dict)

    def named(self) -> Transcript:
        """The transcript with its speakers' names in place of their labels, for rendering."""
        return self.with_speaker_names(self.speaker_names)

    @property
    def speakers(self) -> tuple[str, ...]:
        """The speakers, in the order they first speak; none without speaker labels."""
        return tuple(dict.fromkeys(s.speaker for s in self.segments if s.speaker is not None))

    def with_speaker_names(self, names: Mapping[str, str]) -> Transcript:
        """The transcript with each speaker label a name was given for replaced by that name."""
        if not names:
            return self

        def named(label: str | None) -> str | None:
            return names.get(label, label) if label is not None else None

        return dataclasses.replace(
            self,
            speaker_names={},
            segments=tuple(
                dataclasses.replace(
                    segment,
                    speaker=named(segment.speaker),
                    words=tuple(
                        dataclasses.replace(word, speaker=named(word.speaker))
                        for word in segment.words
                    )
                    if segment.words is not None
                    else None,
                )
                for segment in self.segments
            ),
        )

    def without_words(self) -> Transcript:
        """The transcript without word times (kept for subtitles, shown only where asked for)."""
        if all(segment.words is None for segment in self.segments):
            return self
        return dataclasses.replace(
            self,
            segments=tuple(dataclasses.replace(s, words=None) for s in self.segments),
        )

    @property
    def text(self) -> str:
        """The whole text, as faster-whisper's segments join it (each segment keeps its own spacing)."""
        return "".join(segment.text for segment in self.segments).strip()

    def segments_as_dicts(self) -> list[dict[str, Any]]:
        rows = []
        for segment in self.segments:
            row = asdict(segment)
            for name in ("words", "speaker", *DETAILS):
                if row[name] is None:
                    del row[name]
            for word in row.get("words") or ():
                if word["speaker"] is None:
                    del word["speaker"]
            if "tokens" in row:
                row["tokens"] = list(row["tokens"])
            rows.append(row)
        return rows

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = tuple(
            Segment(
                id=s["id"],
                start=s["start"],
                end=s["end"],
                text=s["text"],
                words=tuple(Word(**w) for w in s["words"]) if s.get("words") is not None else None,
                speaker=s.get("speaker"),
                seek=s.get("seek"),
                tokens=tuple(s["tokens"]) if s.get("tokens") is not None else None,
                temperature=s.get("temperature"),
                avg_logprob=s.get("avg_logprob"),
                compression_ratio=s.get("compression_ratio"),
                no_speech_prob=s.get("no_speech_prob"),
            )
            for s in data["segments"]
        )
        return cls(
            language=data["language"],
            language_probability=data["language_probability"],
            duration=data["duration"],
            segments=segments,
            speaker_names=dict(data.get("speaker_names") or {}),
        )
