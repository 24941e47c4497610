"""The names people give the speakers of a transcript ("Speaker 1" is Ada): checked, and stored
with the transcript. The segments keep their labels; outputs rendered later carry the names, and
the files the job published are rewritten with them (worker/renamed_files.py): a rename marks
them outdated, and the rewrite records the names they then show, under the same row lock."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update

from whisper_transcriber.db.store_base import JOBS, SEGMENTS, TRANSCRIPTS, StoreBase
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobOptions, stored_options

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


@dataclass(frozen=True)
class OutdatedFiles:
    """A job's published files, behind the names its speakers were given."""

    job_id: int
    source_path: str
    outputs: tuple[str, ...]
    transcript: Transcript
    """With its labels, and the names given now as its speaker_names."""
    names_in_files: Mapping[str, str]
    """The names the files show (by label); none: the labels."""
    options: JobOptions
    """The job's, which its files were rendered by."""


class SpeakerNames:
    """Renaming a job's speakers, and keeping its published files in step."""

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
                select(TRANSCRIPTS.c.speaker_names, TRANSCRIPTS.c.names_in_files)
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
            in_files = dict(row.names_in_files or {})
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
                .values(speaker_names=given or None, files_outdated=given != in_files)
            )
        return given

    def files_outdated(self, job_id: int) -> bool:
        """Whether the job's files still show other names than those given (being rewritten)."""
        query = select(TRANSCRIPTS.c.files_outdated).where(TRANSCRIPTS.c.job_id == job_id)
        with self.db._read() as conn:
            return bool(conn.scalar(query))

    def outdated(self, limit: int, skip: Sequence[int] = ()) -> list[int]:
        """Jobs whose files show other names than those given, oldest first (but those in skip)."""
        query = (
            select(TRANSCRIPTS.c.job_id)
            .where(TRANSCRIPTS.c.files_outdated, TRANSCRIPTS.c.job_id.not_in(skip))
            .order_by(TRANSCRIPTS.c.job_id)
            .limit(limit)
        )
        with self.db._read() as conn:
            return list(conn.scalars(query))

    def outdated_files(self, job_id: int) -> OutdatedFiles | None:
        """What rewriting the job's files needs; None once they are up to date (or gone).
        Outputs a newer job of the same source published again are that job's now."""
        query = (
            select(TRANSCRIPTS, JOBS.c.source_path, JOBS.c.outputs, JOBS.c.options)
            .join(JOBS, JOBS.c.id == TRANSCRIPTS.c.job_id)
            .where(TRANSCRIPTS.c.job_id == job_id, TRANSCRIPTS.c.files_outdated)
        )
        with self.db._read() as conn:
            row = conn.execute(query).first()
            if row is None:
                return None
            source = row.source_path
            newer = conn.scalars(
                select(JOBS.c.outputs).where(
                    JOBS.c.id > job_id,
                    (JOBS.c.source_path == source) | (JOBS.c.original_moved_to == source),
                )
            ).all()
        taken = {path for outputs in newer for path in outputs or ()}
        return OutdatedFiles(
            job_id=job_id,
            source_path=row.source_path,
            outputs=tuple(path for path in row.outputs or () if path not in taken),
            transcript=Transcript.from_dict(dict(row._mapping)),  # a transcripts row
            names_in_files=dict(row.names_in_files or {}),
            options=stored_options(row.options),
        )

    def files_rewritten(
        self,
        job_id: int,
        names: Mapping[str, str],
        names_in_files: Mapping[str, str],
        publish: Callable[[], bool],
    ) -> bool:
        """Publish the files rewritten from names_in_files to names and record that they show
        them, if the record still says both (another rename, or another instance's pass, came
        between: False, publishing nothing) and publish placed every file (False otherwise:
        the next pass compares again). The row stays locked while publishing, so that a rename
        waits and the record never disagrees with the files."""
        with self.db._write() as conn:
            row = conn.execute(
                select(
                    TRANSCRIPTS.c.speaker_names,
                    TRANSCRIPTS.c.names_in_files,
                    TRANSCRIPTS.c.files_outdated,
                )
                .where(TRANSCRIPTS.c.job_id == job_id)
                .with_for_update()
            ).first()
            if (
                row is None
                or not row.files_outdated
                or dict(row.speaker_names or {}) != dict(names)
                or dict(row.names_in_files or {}) != dict(names_in_files)
            ):
                return False
            if not publish():
                return False
            conn.execute(
                update(TRANSCRIPTS)
                .where(TRANSCRIPTS.c.job_id == job_id)
                .values(names_in_files=dict(names) or None, files_outdated=False)
            )
        return True
