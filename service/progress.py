"""What `transcribe` shows while it waits: a progress bar per file on a terminal, plain lines (one
per finished file) otherwise; and the outcome of each file, whichever way it was transcribed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


@dataclass(frozen=True)
class Outcome:
    """How one named file ended: done, failed, cancelled, or refused before it had a job."""

    label: str  # the file, as the lines name it
    status: str
    reason: str | None = None  # why it failed or was refused
    outputs: tuple[str, ...] = ()  # where its transcripts are
    note: str | None = None  # why a done job has no new transcripts
    text: str | None = None  # the transcript's text, when asked to print it

    @property
    def ok(self) -> bool:
        return self.status == "done"

    def lines(self) -> list[str]:
        if self.status == "refused":
            return [f"refused {self.reason}"]
        if self.status != "done":
            return [f"{self.status:<7} {self.label}: {self.reason}"]
        lines = [f"done    {self.label}"]
        lines += [f"        -> {output}" for output in self.outputs]
        if self.note:
            lines.append(f"        ({self.note})")
        return lines


class Display(Protocol):
    def add(self, key: int, label: str) -> None:
        """A file to follow (key: its job's id)."""

    def update(self, key: int, status: str, progress: float) -> None:
        """Its job's status and progress (0 to 1)."""

    def finished(self, outcome: Outcome, key: int | None = None) -> None:
        """A file has ended (or was refused, without a key): its lines."""

    def say(self, line: str) -> None:
        """A line about the whole run (where the work goes)."""


class PlainDisplay:
    """Not a terminal: no bars, the lines of each file as it ends."""

    def __init__(self, out: TextIO, notes: TextIO) -> None:
        self.out = out
        self.notes = notes

    def add(self, key: int, label: str) -> None:
        pass

    def update(self, key: int, status: str, progress: float) -> None:
        pass

    def finished(self, outcome: Outcome, key: int | None = None) -> None:
        for line in outcome.lines():
            print(line, file=self.out, flush=True)

    def say(self, line: str) -> None:
        print(line, file=self.notes, flush=True)


class BarsDisplay:
    """A terminal: a bar per file (status, percentage, time), each file's lines above the bars
    as it ends; the bars go when the run ends, the lines stay."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[status]}", markup=False),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._tasks: dict[int, list[TaskID]] = {}

    def add(self, key: int, label: str) -> None:
        task = self.progress.add_task(label, total=1.0, status="queued")
        self._tasks.setdefault(key, []).append(task)

    def update(self, key: int, status: str, progress: float) -> None:
        for task in self._tasks.get(key, ()):
            self.progress.update(task, completed=min(max(progress, 0.0), 1.0), status=status)

    def finished(self, outcome: Outcome, key: int | None = None) -> None:
        if key is not None:
            for task in self._tasks.pop(key, ()):
                self.progress.update(task, completed=1.0, status=outcome.status, visible=False)
        for line in outcome.lines():
            self.progress.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def say(self, line: str) -> None:
        self.progress.console.print(line, markup=False, highlight=False, soft_wrap=True)


def _stream(to_stderr: bool) -> TextIO:
    return sys.stderr if to_stderr else sys.stdout


def shows_bars(*, to_stderr: bool = False) -> bool:
    """Whether display() will draw bars (its stream is a terminal)."""
    return _stream(to_stderr).isatty()


@contextmanager
def display(*, to_stderr: bool = False) -> Iterator[Display]:
    """Bars when the stream the lines go to (stdout, or stderr when stdout carries transcripts)
    is a terminal; plain lines otherwise. Notes about the run go to stderr."""
    stream = _stream(to_stderr)
    if not shows_bars(to_stderr=to_stderr):
        yield PlainDisplay(stream, sys.stderr)
        return
    bars = BarsDisplay(Console(file=stream))
    with bars.progress:
        yield bars
