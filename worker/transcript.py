"""The transcript as plain values: what the engine produces and what outputs and the database store."""

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
            if segment.words is None:
                del row["words"]
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
            )
            for s in data["segments"]
        )
        return cls(
            language=data["language"],
            language_probability=data["language_probability"],
            duration=data["duration"],
            segments=segments,
        )
