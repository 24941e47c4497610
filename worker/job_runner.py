"""One job, start to finish, inside a worker process: transcribe, stage outputs, finish fenced."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from whisper_transcriber.db.errors import (
    DatabaseRefused,
    JobNotFound,
    LeaseLost,
    QueueError,
)
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.transcript import Transcript
from whisper_transcriber.db.values import JobRecord
from whisper_transcriber.worker.confinement import Confinement, SourceRefused, opened_source
from whisper_transcriber.worker.engine import Engine
from whisper_transcriber.worker.heartbeat import Heartbeat
from whisper_transcriber.worker.job_in_hand import about_job
from whisper_transcriber.worker.media import MediaError
from whisper_transcriber.worker.model_cache import ModelLoadFailed, UnknownModel
from whisper_transcriber.worker.names import name_max
from whisper_transcriber.worker.originals import move_original
from whisper_transcriber.worker.outputs import OutputNameError, check_name_lengths, output_paths
from whisper_transcriber.worker.patience import patiently
from whisper_transcriber.worker.sidecars import (
    existing_subtitle,
    same_name_videos,
    sharing,
    subtitle_language,
    withheld_note,
)
from whisper_transcriber.worker.split_files import NO_SPLIT, PieceFailed, SplitRules, Splitter
from whisper_transcriber.worker.staging import OutputFolderChanged, stage_outputs

# The engine, or what gives it once the attempt has begun (a model loaded on demand).
EngineOrLoader = Engine | Callable[[], Engine]

log = logging.getLogger(__name__)


class SourceChanged(MediaError):
    """The file is not the one that was queued any more (a job is one version of a file)."""


def verify_source(job: JobRecord, stat: os.stat_result | None = None) -> None:
    """The file (or the open file's stat) is still the version the job was queued for."""
    if job.source_size < 0:
        return  # it was missing when queued; the engine says whether it is there now
    if stat is None:
        try:
            stat = os.stat(job.source_path)
        except FileNotFoundError:
            raise MediaError(
                f"file not found (deleted or moved before its job ran): {job.source_path}"
            ) from None
        except OSError:
            return  # the engine reports it with a plain reason
    # Not inode or ctime: a chmod, or a copy of the same bytes put in its place, moves them and
    # is the same work (enqueue compares content for that); new bytes are a new job anyway.
    if (stat.st_size, stat.st_mtime_ns) != (job.source_size, job.source_mtime_ns):
        raise SourceChanged(
            f"the file changed after it was queued: {job.source_path} (the new version "
            "is a job of its own when submitted or seen again)"
        )
    if job.parent_id is not None and job.source_inode >= 0 and stat.st_ino != job.source_inode:
        # A piece reads the file its parent split, not one put in its place since (with the same
        # size and time): a transcript must not join pieces of two files.
        raise SourceChanged(
            f"the file was replaced while its pieces were transcribed: {job.source_path}"
        )


class AlreadySubtitled(Exception):
    """A media-library video that already has a subtitle in its language: nothing to do."""

    def __init__(self, existing: Path, language: str, videos: list[str]) -> None:
        self.existing = existing
        super().__init__(
            f"skipped: {existing.name} already has {language} subtitles{sharing(videos)}"
        )


class Abandoned(Exception):
    """The job was cancelled or its lease taken while it ran: stop and leave no trace."""


def _never() -> bool:
    return False


def run_job(
    store: JobStore,
    engine: EngineOrLoader,
    job: JobRecord,
    confinement: Confinement,
    abandoned: Callable[[], bool] = _never,
    split: SplitRules = NO_SPLIT,
) -> None:
    """Run a claimed job; every outcome is recorded through the store, nothing escapes but bugs.

    The source is read only if confinement allows it (worker/confinement.py). A job that ended
    (done, or failed for good) then moves its original where its inbox says. `abandoned` says
    whether the supervisor found the attempt lost: it stops at the next segment, as when its own
    heartbeat finds it so (whichever looked first). `split`: when a long file becomes pieces
    for every worker (worker/split_files.py)."""
    with about_job(job.id):
        outcome = _attempt(store, engine, job, confinement, abandoned, split)
        if outcome is not None and outcome.status.is_final and outcome.parent_id is None:
            try:
                move_original(store, outcome)
            except (OSError, QueueError) as exc:  # the service's sweep tries again
                log.warning("job %s: cannot move %s: %s", job.id, job.source_path, exc)


def _attempt(
    store: JobStore,
    engine: EngineOrLoader,
    job: JobRecord,
    confinement: Confinement,
    abandoned: Callable[[], bool],
    split: SplitRules,
) -> JobRecord | None:
    """The attempt's recorded outcome; None when nothing could be recorded (lease lost, ...)."""
    attempt = job.attempts
    log.info("job %s: attempt %s on %s", job.id, attempt, job.source_path)
    if job.options.unusable is not None:  # stored by another version, with values not ours
        reason = f"this version cannot run the job's options ({job.options.unusable})"
        log.warning("job %s: failed: %s", job.id, reason)
        return _fail(store, job, reason, retryable=False)
    try:
        with Heartbeat(store, job.id, attempt) as heartbeat:

            def on_progress(fraction: float) -> None:
                if heartbeat.lost.is_set() or abandoned():
                    raise Abandoned
                heartbeat.set_progress(fraction)

            source = Path(job.source_path)
            output_dir = Path(job.options.output_dir) if job.options.output_dir else None
            folder = output_dir or source.parent
            # Outputs are named after the file as found: a link's own name in an inbox.
            named = job.options.named_after
            video = folder / named if named else source

            def on_language(language: str) -> None:
                if job.options.detect_only or job.parent_id is not None:
                    return  # no files of its own: nothing to check
                tag = None
                if job.options.media_library:
                    tag = subtitle_language(language, job.options.task)
                    own = patiently(lambda: store.outputs_of_source(job.source_path), job.id)
                    existing = existing_subtitle(video, tag, output_dir, ignore=own)
                    if existing is not None:
                        raise AlreadySubtitled(existing, tag, same_name_videos(video, folder))
                # Names no file system here can hold fail the job now, not after the work.
                paths = output_paths(source, job.options.formats, output_dir, tag, name=named)
                check_name_lengths(paths, name_max(folder))

            detected = None
            if job.options.language is None:  # checked after detection, before decoding the rest
                detected = on_language
            else:  # known already: checked before decoding anything
                on_language(job.options.language)
            splitter = None
            if split.may_split(job):

                def run_piece(piece: JobRecord) -> None:
                    lost = heartbeat.lost.is_set
                    run_job(store, engine, piece, confinement, lambda: lost() or abandoned())

                splitter = Splitter(
                    store,
                    job,
                    split,
                    run_piece,
                    on_progress,
                    heartbeat.lost.wait,
                )
            transcript = _transcribe(engine, job, confinement, on_progress, detected, splitter)
            verify_source(job)  # an older version must never publish over a newer one's outputs
            if job.options.detect_only or job.parent_id is not None:
                # A language, or a piece of a split file: its parent writes the files.
                done = patiently(lambda: store.complete(job.id, attempt, transcript), job.id)
                what = "piece done" if job.parent_id is not None else "detected"
                log.info("job %s: %s (%s)", job.id, what, transcript.language)
                return done
            language_tag = (
                subtitle_language(transcript.language, job.options.task)
                if job.options.media_library
                else None
            )
            try:
                ours = patiently(lambda: store.outputs_of_source(job.source_path), job.id)
                staged = stage_outputs(
                    transcript,
                    source,
                    job.options.formats,
                    output_dir,
                    language_tag,
                    ours,
                    name=named,
                    companion=Path(job.move_on_done) if job.move_on_done else None,
                    options=job.options,
                )
            except OSError as exc:
                return _cannot_write(store, job, folder, exc)
            # Sidecar names held by other files (another video with the same name): not written;
            # and what the transcript lacks (speaker labels that could not be made).
            withheld = (
                withheld_note(list(staged.withheld.values()), same_name_videos(video, folder))
                if staged.withheld
                else None
            )
            note = "; ".join(filter(None, (transcript.note, withheld))) or None
            published: list[Path] = []

            def publish_once() -> list[Path]:  # a retried complete must not publish twice
                if not published:
                    published.extend(staged.publish())
                return published

            try:
                done = patiently(
                    lambda: store.complete(
                        job.id, attempt, transcript, publish=publish_once, note=note
                    ),
                    job.id,
                )
            except OSError as exc:  # from publishing: a folder swapped for a link, a full disk
                return _cannot_write(store, job, folder, exc)
            finally:
                staged.discard()  # no-op after a publish; removes temporaries otherwise
        log.info("job %s: done, %.1f s of audio -> %s", job.id, transcript.duration, done.outputs)
        return done
    except AlreadySubtitled as exc:
        log.info("job %s: %s", job.id, exc)
        try:
            skip = partial(store.skip, job.id, attempt, str(exc), outputs=[str(exc.existing)])
            return patiently(skip, job.id)
        except LeaseLost:
            log.info("job %s: attempt %s is no longer current", job.id, attempt)
        except QueueError as db_error:  # the database is away: the lease runs out, it runs again
            log.warning("job %s: could not record the skip: %s", job.id, db_error)
    except Abandoned:
        log.info("job %s: attempt %s was cancelled or taken over; stopped mid-way", job.id, attempt)
    except (LeaseLost, JobNotFound):  # JobNotFound: a piece, removed with its file's job
        log.info("job %s: attempt %s is no longer current; dropped its work", job.id, attempt)
    except (MediaError, SourceRefused, OutputNameError, UnknownModel, PieceFailed) as exc:
        log.warning("job %s: failed: %s", job.id, exc)
        return _fail(store, job, str(exc), retryable=False)
    except ModelLoadFailed as exc:  # out of memory now, say: worth another attempt
        log.warning("job %s: %s", job.id, exc)
        return _fail(store, job, str(exc), retryable=True)
    except DatabaseRefused as exc:  # the same result would be refused again: no retry
        log.error("job %s: the database refused its result: %s", job.id, exc)
        return _fail(store, job, f"the database refused the result: {exc}", retryable=False)
    except Exception as exc:
        log.exception("job %s: attempt %s crashed", job.id, attempt)
        return _fail(store, job, f"{type(exc).__name__}: {exc}", retryable=True)
    return None


def _cannot_write(store: JobStore, job: JobRecord, folder: Path, exc: OSError) -> JobRecord:
    """The attempt failed writing its transcripts: retried (a full disk may be freed), unless a
    name is too long, which it would be again."""
    retryable = exc.errno != errno.ENAMETOOLONG
    fail = partial(store.fail, job.id, job.attempts, _write_error(folder, exc), retryable=retryable)
    return patiently(fail, job.id)


def _write_error(folder: Path, exc: OSError) -> str:
    if isinstance(exc, OutputFolderChanged):
        return f"cannot write transcripts in {folder}: {exc}"
    # Names below the folder are relative (written through its descriptor): say the folder.
    named = Path(exc.filename) if isinstance(exc.filename, str) else None
    where = named.parent if named is not None and named.is_absolute() else folder
    return f"cannot write transcripts in {where}: {exc.strerror or exc}"


def _transcribe(
    engine: EngineOrLoader,
    job: JobRecord,
    confinement: Confinement,
    on_progress: Callable[[float], None],
    on_language: Callable[[str], None] | None,
    splitter: Splitter | None = None,
) -> Transcript:
    """Open the source, judge the open file, and have the model read that very file (loading
    the job's model first when it must: the heartbeat holds the lease meanwhile), or, when it
    is long, every worker read it piece by piece (worker/split_files.py)."""
    with opened_source(job, confinement) as (readable, stat):
        verify_source(job, stat)
        model = engine() if callable(engine) else engine
        try:
            if splitter is not None and splitter.wants(readable):
                return splitter.transcribe(model, readable, on_language)
            return model.transcribe(readable, job.options, on_progress, on_language)
        except MediaError as exc:  # name the file as people know it, not its descriptor
            raise type(exc)(str(exc).replace(readable, job.source_path)) from exc


def _fail(store: JobStore, job: JobRecord, error: str, *, retryable: bool) -> JobRecord | None:
    try:
        return patiently(
            lambda: store.fail(job.id, job.attempts, error, retryable=retryable), job.id
        )
    except (LeaseLost, JobNotFound):
        log.info("job %s: attempt %s is no longer current", job.id, job.attempts)
    except QueueError as exc:  # the database is away: the lease runs out and recovery retries it
        log.warning("job %s: could not record the failure (%s): %s", job.id, exc, error)
    return None
