"""Confinement, attacked as a user of a shared NAS would: links out of the inbox, files and folders
swapped for links after their job was planned, sources replaced after their job ended. Nothing
outside the allowed folders is opened, served or written. Real links, real folder swaps, the real
model; the watcher's part runs in a real service."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from tests.helpers.apps import app_for
from tests.helpers.jobs import jobs_by_path
from tests.helpers.media import FIXTURES, place
from tests.helpers.outputs import temporaries, transcript_files
from tests.helpers.service import JOB_DEADLINE_S, running_service, service_env
from tests.helpers.waiting import wait_until
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.models import JobStatus
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.service.inboxes import inboxes_from_settings
from whisper_transcriber.service.settings import load_settings
from whisper_transcriber.worker.confinement import Confinement
from whisper_transcriber.worker.engine import Engine
from whisper_transcriber.worker.job_runner import run_job


class _Opens(FileSystemEventHandler):
    def __init__(self) -> None:
        self.files: set[str] = set()
        self.lock = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type == "opened" and not event.is_directory:
            with self.lock:
                self.files.add(os.fsdecode(event.src_path))


@contextmanager
def opens_under(*folders: Path) -> Iterator[_Opens]:
    """Every file opened under the folders, by anyone, as inotify reports it."""
    opens = _Opens()
    observer = Observer()
    for folder in folders:
        observer.schedule(opens, str(folder), recursive=True)
    observer.start()
    try:
        yield opens
    finally:
        observer.stop()
        observer.join()


def everything_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def test_links_out_of_the_allowed_folders_are_refused_and_never_opened(
    database_url: str, job_store: JobStore, tmp_path: Path
) -> None:
    private = tmp_path / "private"
    secret = place(FIXTURES / "speech_a.wav", private, "secret.wav")
    place(FIXTURES / "speech_b.flac", private / "films", "film.flac")
    downloads = tmp_path / "downloads"
    allowed_target = place(FIXTURES / "speech_c.ogg", downloads, "episode.ogg")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    plain = place(FIXTURES / "speech_a.wav", inbox, "plain.wav")
    os.mkfifo(inbox / "pipe.wav")  # would hang a reader that opens it blocking
    (inbox / "stolen.wav").symlink_to(secret)
    (inbox / "Films").symlink_to(private / "films")
    (inbox / "sub").mkdir()
    (inbox / "sub" / "up.wav").symlink_to("../../private/secret.wav")  # relative, one level down
    (inbox / "episode.ogg").symlink_to(allowed_target)

    with (
        opens_under(private) as private_opens,
        opens_under(downloads) as downloads_opens,
        running_service(
            "--database-url", database_url, "--inbox", inbox, "--workers", "1",
            cwd=tmp_path, env=service_env(SETTLE_S="0.3", LINK_ROOTS=str(downloads)),
        ) as service,
    ):  # fmt: skip
        names = {
            "stolen": str(inbox / "stolen.wav"),
            "folder": str(inbox / "Films"),
            "up": str(inbox / "sub" / "up.wav"),
            "pipe": str(inbox / "pipe.wav"),
            "plain": str(plain),
            "allowed": str(allowed_target),  # a link's job is its target's
        }
        jobs = wait_until(
            lambda: (
                all(
                    (job := jobs_by_path(job_store).get(path)) and job.status.is_final
                    for path in names.values()
                )
                and jobs_by_path(job_store)
            ),
            JOB_DEADLINE_S,
            "every file's job to end",
        )
        for name, target in (("stolen", secret), ("folder", private / "films"), ("up", secret)):
            job = jobs[names[name]]
            assert job.status is JobStatus.FAILED, job
            assert job.attempts == 0  # refused at the door: never given to a worker
            assert job.error is not None
            assert job.error.startswith(f"refused: {names[name]} is a symbolic link to "), job.error
            assert f"({target})" in job.error and "link_roots" in job.error, job.error
        assert jobs[names["pipe"]].status is JobStatus.FAILED
        assert (
            jobs[names["pipe"]].error
            == f"not a regular file (a pipe, socket or device): {inbox / 'pipe.wav'}"
        )
        assert jobs[names["plain"]].status is JobStatus.DONE
        assert jobs[names["allowed"]].status is JobStatus.DONE
        # Transcripts beside the link, not beside its target.
        assert "elephant" in (inbox / "episode.txt").read_text().lower()
        assert sorted(os.listdir(downloads)) == ["episode.ogg"]

        # Asked for again by hand, a refused link is refused by the worker too, still unopened.
        stolen = jobs[names["stolen"]]
        assert service.client.post(f"/jobs/{stolen.id}/retry").status_code == 200
        again = service.wait_status(stolen.id, "failed")
        assert again["attempts"] == 1
        assert again["error"].startswith(f"refused: {names['stolen']} now leads to {secret}")
        assert service.stop() == 0

    assert private_opens.files == set(), "a file outside the allowed folders was opened"
    assert str(allowed_target) in downloads_opens.files  # the detector works: this one was read
    assert everything_under(private) == ["films", "films/film.flac", "secret.wav"]
    assert transcript_files(inbox / "stolen.wav") == []
    assert "Traceback" not in service.log.read_text()


def test_a_source_swapped_for_a_link_after_its_job_was_queued_is_not_read(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    private = tmp_path / "private"
    secret = place(FIXTURES / "speech_a.wav", private, "secret.wav")
    confinement = Confinement.of([inbox])
    # The file itself, and a folder on its way, each swapped for a link to the same bytes
    # (same size and mtime: only the link gives it away).
    talk = place(FIXTURES / "speech_a.wav", inbox, "talk.wav")
    deep = place(FIXTURES / "speech_a.wav", inbox / "sub", "deep.wav")
    shutil.copystat(secret, talk)
    shutil.copystat(secret, deep)
    queued = [
        store.enqueue(path, JobOptions(formats=("txt",)), "inbox:inbox")[0] for path in (talk, deep)
    ]
    talk.unlink()
    talk.symlink_to(secret)
    shutil.copytree(inbox / "sub", private / "sub")
    shutil.rmtree(inbox / "sub")
    (inbox / "sub").symlink_to(private / "sub")

    with opens_under(private) as opens:
        for _ in queued:
            claimed = store.claim("test-worker")
            assert claimed is not None
            run_job(store, engine, claimed, confinement)
    for job, real in ((queued[0], secret), (queued[1], private / "sub" / "deep.wav")):
        ended = store.get(job.id)
        assert ended.status is JobStatus.FAILED and ended.attempts == 1, ended
        assert ended.error == (
            f"refused: {job.source_path} now leads to {real} (a symbolic link was put in its "
            "place or in a folder on its way)"
        )
    assert opens.files == set()
    assert [p for p in everything_under(tmp_path) if p.endswith(".txt")] == []


def test_transcripts_are_not_written_through_a_folder_swapped_after_planning(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    settings = load_settings(inboxes=[f"{tmp_path / 'inbox'}?outbox={tmp_path / 'outbox'}"])
    [inbox] = inboxes_from_settings(settings)
    source = place(FIXTURES / "speech_a.wav", tmp_path / "inbox" / "a" / "b", "talk.wav")
    plan = inbox.plan(source)
    assert plan.options.output_dir == str(tmp_path / "outbox" / "a" / "b")
    store.enqueue(source, plan.options, inbox.origin)
    # Between planning and publishing, a folder of the planned path (not the last one) becomes
    # a link to a place the attacker wants written.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "b").mkdir(parents=True)
    (tmp_path / "outbox").mkdir()
    (tmp_path / "outbox" / "a").symlink_to(elsewhere)

    claimed = store.claim("test-worker")
    assert claimed is not None
    run_job(store, engine, claimed, Confinement.of([tmp_path / "inbox"]))
    job = store.get(claimed.id)
    assert job.status is JobStatus.QUEUED  # an attempt failed; the folder may be put right
    assert job.error == (
        f"cannot write transcripts in {tmp_path / 'outbox' / 'a' / 'b'}: "
        f"{tmp_path / 'outbox' / 'a'} is now a symbolic link (to {elsewhere}); refused to "
        "write through it, nothing was written"
    )
    assert everything_under(elsewhere) == ["b"]
    assert not temporaries(tmp_path)


def test_audio_is_served_only_while_it_is_the_jobs_own_file(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    private = tmp_path / "private"
    secret = place(FIXTURES / "speech_a.wav", private, "secret.wav")
    source = place(FIXTURES / "speech_a.wav", media, "talk.wav")
    shutil.copystat(secret, source)  # same size and mtime as the secret: only the link tells
    job, _ = store.enqueue(source, JobOptions(formats=("txt",)), "api")
    claimed = store.claim("test-worker")
    assert claimed is not None
    run_job(store, engine, claimed, Confinement.of([media]))
    assert store.get(job.id).status is JobStatus.DONE

    with app_for(store, tmp_path, served_roots=[media], api_key="k") as client:
        keyed = {"Authorization": "Bearer k"}
        signed = client.get(f"/jobs/{job.id}/audio-link", headers=keyed).json()["url"]
        assert client.get(f"/jobs/{job.id}/audio", headers=keyed).content == source.read_bytes()
        assert client.get(signed).status_code == 200

        # The ended job's source replaced by a link to a file outside: nothing is served.
        source.unlink()
        source.symlink_to(secret)
        for response in (client.get(f"/jobs/{job.id}/audio", headers=keyed), client.get(signed)):
            assert response.status_code == 410, response.text
            assert response.json()["detail"].startswith(
                f"not served: refused: {source} now leads to"
            )
        ranged = client.get(signed, headers={"Range": "bytes=0-99"})
        assert ranged.status_code == 410

        # Replaced by other bytes in a real file: not this job's file any more.
        source.unlink()
        source.write_bytes(b"RIFF" + bytes(5000))
        gone = client.get(f"/jobs/{job.id}/audio", headers=keyed)
        assert gone.status_code == 410
        assert (
            gone.json()["detail"]
            == f"not served: the file at {source} is no longer this job's source"
        )

        source.unlink()
        assert client.get(f"/jobs/{job.id}/audio", headers=keyed).status_code == 404


def test_a_link_in_a_folder_of_allowed_roots_cannot_widen_what_is_served(
    store: JobStore, tmp_path: Path
) -> None:
    """A path named over the API is resolved when queued; if the file becomes a link into
    another allowed folder later, the job still serves nothing: only its own file."""
    media, other = tmp_path / "media", tmp_path / "other"
    source = place(FIXTURES / "speech_a.wav", media, "talk.wav")
    twin = place(FIXTURES / "speech_a.wav", other, "twin.wav")
    shutil.copystat(source, twin)
    job, _ = store.enqueue(source, JobOptions(), "api")
    with app_for(store, tmp_path, served_roots=[media, other]) as client:
        assert client.get(f"/jobs/{job.id}/audio").status_code == 200
        source.unlink()
        source.symlink_to(twin)
        assert client.get(f"/jobs/{job.id}/audio").status_code == 410


def test_an_original_is_not_moved_through_a_failed_folder_swapped_for_a_link(
    store: JobStore, engine: Engine, tmp_path: Path
) -> None:
    inbox_folder = tmp_path / "inbox"
    settings = load_settings(inboxes=[f"{inbox_folder}?on_failure=move"])
    [inbox] = inboxes_from_settings(settings)
    bad = inbox_folder / "2026" / "notes.mp3"
    bad.parent.mkdir(parents=True)
    bad.write_text("this is text, not audio\n")
    plan = inbox.plan(bad)
    store.enqueue(bad, plan.options, inbox.origin, move_on_failure=plan.move_on_failure)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (inbox_folder / "failed").symlink_to(elsewhere)

    claimed = store.claim("test-worker")
    assert claimed is not None
    run_job(store, engine, claimed, Confinement.of([inbox_folder]))
    job = store.get(claimed.id)
    assert job.status is JobStatus.FAILED and job.original_moved_to is None
    assert bad.read_text().startswith("this is text")  # stays where it was
    assert everything_under(elsewhere) == []
