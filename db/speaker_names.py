"""The names people give the speakers of a transcript ("Speaker 1" is Ada): checked, and stored
with the transcript. The segments keep their labels; outputs rendered later carry the names."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence

from sqlalchemy import func, select, update

from whisper_transcriber.db.store_base import SEGMENTS, TRANSCRIPTS, StoreBase

MAX_NAME_LENGTH = 100


class NoTranscript(LookupError):
    """The job has no transcript (it does not exist, or has not finished)."""


class SpeakerNameError(ValueError):
    """A name that cannot be given: for no speaker of the transcript, or not showable."""


# Characters a name may not hold though Python calls them printable or they are format marks:
# bidirectional overrides and isolates (they reorder what follows them on screen), zero-width
# spaces and the line and paragraph separators. Joiners (emoji, Indic scripts) are welcome.
_HIDDEN = frozenset(
    "\u200b\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
)
# A tsv cell starting with one of these is a formula to a spreadsheet that opens the file.
_FORMULA_START = ("=", "+", "@")


def checked_name(name: str) -> str:
    """A name as stored: trimmed, shown as written, at most MAX_NAME_LENGTH characters. Every
    output shows it (a subtitle line, a WebVTT voice, a tsv cell): no control characters, no
    tags, nothing that reorders or hides text, no formula."""
    name = name.strip()
    for character in name:
        category = unicodedata.category(character)
        if category in ("Cc", "Cs", "Co", "Cn") or character in _HIDDEN:
            raise SpeakerNameError(
                f"a speaker's name cannot hold U+{ord(character):04X} "
                f"({unicodedata.name(character, 'a control character').lower()})"
            )
    if len(name) > MAX_NAME_LENGTH:
        raise SpeakerNameError(f"a speaker's name has at most {MAX_NAME_LENGTH} characters")
    if any(character in name for character in "<>"):
        raise SpeakerNameError("a speaker's name cannot hold < or > (WebVTT reads them as tags)")
    if name.startswith(_FORMULA_START):
        raise SpeakerNameError(
            "a speaker's name cannot start with =, + or @ (a spreadsheet would run it)"
        )
    return name


def _distinct(given: Mapping[str, str], labels: Sequence[str]) -> None:
    """Every speaker shown by a name of its own: two speakers with one name would read as one
    (merged turns, one colour), and a name that is another speaker's label swaps who is who."""
    shown: dict[str, str] = {}
    for label in labels:
        name = given.get(label, label)
        if name != label and name in labels:
            raise SpeakerNameError(f"{name!r} is another speaker's label; {label} cannot take it")
        if name in shown:
            raise SpeakerNameError(
                f"{shown[name]} and {label} would both be shown as {name!r}: give each its own name"
            )
        shown[name] = label


class SpeakerNames:
    """Renaming a job's speakers."""

    def __init__(self, db: StoreBase) -> None:
        self.db = db

    def of(self, job_ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """The names given in each of these jobs' transcripts (jobs without any are left out)."""
        if not job_ids:
            return {}
        query = select(TRANSCRIPTS.c.job_id, TRANSCRIPTS.c.speaker_names).where(
            TRANSCRIPTS.c.job_id.in_(job_ids), TRANSCRIPTS.c.speaker_names.is_not(None)
        )
        with self.db._read() as conn:
            return {job_id: dict(names) for job_id, names in conn.execute(query) if names}

    def rename(self, job_id: int, names: Mapping[str, str]) -> dict[str, str]:
        """Give the job's speakers these names (by label); an empty name gives the label back.
        Returns every name now given. NoTranscript without a transcript, SpeakerNameError for a
        label the transcript does not have or a name that cannot be shown."""
        with self.db._write() as conn:
            # FOR UPDATE: two renames at once each keep the other's names (PostgreSQL; SQLite's
            # write transactions take turns already).
            row = conn.execute(
                select(TRANSCRIPTS.c.speaker_names)
                .where(TRANSCRIPTS.c.job_id == job_id)
                .with_for_update()
            ).first()
            if row is None:
                raise NoTranscript(f"job {job_id} has no transcript")
            first_said = func.min(SEGMENTS.c.position)
            labels = conn.scalars(
                select(SEGMENTS.c.speaker)
                .where(SEGMENTS.c.job_id == job_id, SEGMENTS.c.speaker.is_not(None))
                .group_by(SEGMENTS.c.speaker)
                .order_by(first_said)
            ).all()
            unknown = sorted(set(names) - set(labels))
            if unknown:
                have = ", ".join(labels) if labels else "none: it has no speaker labels"
                raise SpeakerNameError(
                    f"job {job_id} has no speaker {', '.join(map(repr, unknown))} (it has {have})"
                )
            given = dict(row.speaker_names or {})
            for label, name in names.items():
                name = checked_name(name)
                if name and name != label:
                    given[label] = name
                else:
                    given.pop(label, None)
            _distinct(given, labels)
            conn.execute(
                update(TRANSCRIPTS)
                .where(TRANSCRIPTS.c.job_id == job_id)
                .values(speaker_names=given or None)
            )
        return given
