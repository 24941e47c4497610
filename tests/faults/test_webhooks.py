"""Webhook deliveries through failures, against a real `serve` and real receivers: a receiver
that is down for a while gets every event once it is back; a service killed (kill -9) while a
delivery is in flight sends it again after a restart with the same message id (what HTTP cannot
know), loses no event committed before the kill and invents none; a failed delivery is sent
again on request. The engine is the fake one: these tests are about delivery, not speech."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine

from tests.helpers.fake_engine import fake_engine_env
from tests.helpers.service import free_port, running_service, service_env
from tests.helpers.waiting import wait_until
from tests.helpers.webhook_receiver import receiving
from whisper_transcriber.db.webhook_outbox import WebhookOutbox
from whisper_transcriber.service.webhooks.signing import generate_secret


def _files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"note{n}.wav"
        path.write_bytes(b"RIFF" + bytes([n]) * 64)
        paths.append(path)
    return paths


def _env(url: str, secret: str, **more: str) -> dict[str, str]:
    hooks = {"all": {"url": url, "secret": secret, "events": ["queued", "done"]}}
    return fake_engine_env(service_env(WEBHOOKS=json.dumps(hooks), WEBHOOK_BACKOFF_S="0.5", **more))


def test_a_receiver_down_for_a_while_gets_every_event_when_it_is_back(
    database_url: str, db_engine: Engine, tmp_path: Path
) -> None:
    secret = generate_secret()
    port = free_port()  # nothing listens there yet
    media_files = _files(tmp_path / "media", 3)
    outbox = WebhookOutbox(db_engine)
    with running_service(
        "--database-url", database_url, "--inbox", tmp_path / "media",
        cwd=tmp_path, env=_env(f"http://127.0.0.1:{port}/hook", secret),
    ) as service:  # fmt: skip
        ids = [service.submit(path) for path in media_files]
        for job_id in ids:
            service.wait_status(job_id, "done")

        def tried_and_refused() -> bool:
            pending = outbox.deliveries(status="pending")
            return len(pending) == 6 and all(d.attempts >= 2 for d in pending)

        wait_until(tried_and_refused, 60, "every delivery tried at least twice")
        refused = outbox.deliveries(status="pending")[0]
        assert refused.last_status is None and refused.last_error
        assert "connect" in refused.last_error
        with receiving(secret, port) as receiver:
            wait_until(lambda: len(outbox.deliveries(status="delivered")) == 6, 120, "delivery")
            got = receiver.all()
    assert all(r.verified for r in got)
    assert sorted(r.event for r in got) == ["job.done"] * 3 + ["job.queued"] * 3
    assert len({r.message_id for r in got}) == 6  # none twice


def test_a_kill_mid_delivery_resends_that_message_and_loses_nothing(
    database_url: str, db_engine: Engine, tmp_path: Path
) -> None:
    secret = generate_secret()
    media_files = _files(tmp_path / "media", 4)
    outbox = WebhookOutbox(db_engine)
    with receiving(secret) as receiver:
        env = _env(receiver.url, secret, WEBHOOK_TIMEOUT_S="2")
        receiver.hold.set()  # the first delivery gets no answer until the service is gone
        with running_service(
            "--database-url", database_url, "--inbox", tmp_path / "media", cwd=tmp_path, env=env
        ) as service:  # fmt: skip
            ids = [service.submit(path) for path in media_files]
            for job_id in ids:
                service.wait_status(job_id, "done")
            wait_until(receiver.held.is_set, 30, "a delivery in flight")
            service.kill_all()
        receiver.hold.clear()
        receiver.release()  # the held one is received; its answer goes nowhere
        held = receiver.all()
        assert len(held) >= 1
        with running_service(
            "--database-url", database_url, "--inbox", tmp_path / "media", cwd=tmp_path,
            env=env, log_name="again.log",
        ) as service:  # fmt: skip
            wait_until(
                lambda: len(outbox.deliveries(status="delivered")) == 8,
                60,
                "every delivery after the restart",
            )
    got = receiver.all()
    assert all(r.verified for r in got)
    by_id: dict[str, int] = {}
    for r in got:
        by_id[r.message_id] = by_id.get(r.message_id, 0) + 1
    assert len(by_id) == 8  # every event of the 4 jobs: none lost, none invented
    twice = {m for m, n in by_id.items() if n > 1}
    assert twice <= {r.message_id for r in held}  # only what was in flight at the kill
    assert sorted(r.event for r in {r.message_id: r for r in got}.values()) == (
        ["job.done"] * 4 + ["job.queued"] * 4
    )


def test_a_failed_delivery_is_sent_again_on_request(
    database_url: str, db_engine: Engine, tmp_path: Path
) -> None:
    secret = generate_secret()
    (path,) = _files(tmp_path / "media", 1)
    outbox = WebhookOutbox(db_engine)
    with receiving(secret) as receiver:
        receiver.answer_status = 500
        env = _env(receiver.url, secret, WEBHOOK_RETRY_S="1")
        with running_service(
            "--database-url", database_url, "--inbox", tmp_path / "media", cwd=tmp_path, env=env
        ) as service:  # fmt: skip
            job_id = service.submit(path)
            service.wait_status(job_id, "done")
            wait_until(lambda: len(outbox.deliveries(status="failed")) == 2, 60, "given up")
            failed = service.client.get("/webhooks/deliveries", params={"status": "failed"})
            (done,) = [d for d in failed.json() if d["event"] == "done"]
            assert done["last_status"] == 500 and done["last_error"] == "HTTP 500"
            assert done["next_attempt_at"] is None
            metrics = service.client.get("/metrics").text
            assert 'whisper_transcriber_webhook_deliveries{status="failed"} 2.0' in metrics
            receiver.answer_status = 200
            again = service.client.post(f"/webhooks/deliveries/{done['id']}/resend")
            assert again.status_code == 200 and again.json()["status"] == "pending"
            wait_until(
                lambda: outbox.get(done["id"]).status == "delivered", 30, "the resent delivery"
            )
            twice = service.client.post(f"/webhooks/deliveries/{done['id']}/resend")
            assert twice.status_code == 409
    ids = [r.message_id for r in receiver.all() if r.event == "job.done"]
    assert len(set(ids)) == 1 and len(ids) >= 2  # the same message each time
