"""The transcript as plain values: what the engine produces and what outputs and the database store.

In db/, the bottom layer, as the job store keeps it; the worker, the API and the service read it
from here (tests/integration/test_import_rules.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] | None = None
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

    @property
    def text(self) -> str:
        """The whole text, as faster-whisper's segments join it (each segment keeps its own spacing)."""
        return "".join(segment.text for segment in self.segments).strip()

    def segments_as_dicts(self) -> list[dict[str, Any]]:
        rows = []
        for segment in self.segments:
            row = asdict(segment)
            for name in ("words", *DETAILS):
                if row[name] is None:
                    del row[name]
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
        )
