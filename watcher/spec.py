"""One inbox as the watcher sees it: a resolved folder, its rules, and the plan for each file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from whisper_transcriber.db.values import JobOptions, ObserverKind, inbox_origin

# Native events unless asked to poll (a network mount, where inotify sees nothing).
DEFAULT_OBSERVER: ObserverKind = "native"
# Seconds between two listings of a polling inbox: cheap on a NAS, and the settle time dominates.
POLL_INTERVAL_S = 10.0


@dataclass(frozen=True)
class JobPlan:
    """What enqueueing one file of an inbox records: its options and where its original goes."""

    options: JobOptions
    move_on_done: Path | None
    move_on_failure: Path | None


@dataclass(frozen=True)
class Inbox:
    root: Path  # resolved
    name: str
    options: JobOptions  # the inbox's own, over the service's defaults; output_dir unset
    recursive: bool = True
    observer: ObserverKind = DEFAULT_OBSERVER
    poll_interval_s: float = POLL_INTERVAL_S
    outbox: Path | None = None  # transcripts mirror the inbox tree here; None: beside the file
    done_dir: Path | None = None  # originals move here once done; None: they stay
    failed_dir: Path | None = None  # originals move here once failed for good; None: they stay

    @property
    def origin(self) -> str:
        return inbox_origin(self.name)

    @property
    def excluded(self) -> tuple[Path, ...]:
        """Folders inside the inbox that hold our own results, never input."""
        folders = (self.outbox, self.done_dir, self.failed_dir)
        return tuple(
            f for f in folders if f is not None and f != self.root and f.is_relative_to(self.root)
        )

    def holds(self, path: Path) -> bool:
        """True for a path the inbox watches: under its root (directly, unless recursive), and not
        inside its outbox, done or failed folder."""
        if not path.is_relative_to(self.root) or path == self.root:
            return False
        if not self.recursive and path.parent != self.root:
            return False
        return not any(path.is_relative_to(folder) for folder in self.excluded)

    def plan(self, path: Path) -> JobPlan:
        relative = path.relative_to(self.root)
        # A linked file's job is its target's (in a link root): it is never moved, and its
        # transcripts go beside the link, not beside the target, named after the link ("Movie
        # (2020).en.srt" for a link "Movie (2020).mkv" to "movie.2020.1080p.mkv": what a media
        # server looks for). A file in a linked folder stays where it is too; its transcripts go
        # into the real folder.
        resolved = path.resolve()
        linked = resolved != path
        done_dir = None if linked else self.done_dir
        failed_dir = None if linked else self.failed_dir
        # Beside the file means beside where it ends up: in done/ when originals move there.
        output_folder = self.outbox or done_dir or (self.root if linked else None)
        options = self.options
        if linked and path.name != resolved.name:
            options = options.model_copy(update={"named_after": path.name})
        if output_folder is not None:
            # Resolved now, once: publishing follows no link that appears later (worker/outputs).
            planned = (output_folder / relative.parent).resolve()
            options = options.model_copy(update={"output_dir": str(planned)})
        return JobPlan(
            options=options,
            move_on_done=done_dir / relative if done_dir else None,
            move_on_failure=failed_dir / relative if failed_dir else None,
        )
