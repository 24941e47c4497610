"""Webhooks from a real `serve` (the real model) to real receivers that verify each delivery's
signature with the Standard Webhooks library: an operator's subscription hears every event of
every job, a request's callback the events it asked for; the OpenAI endpoint takes a callback
too; a request may not point a callback into the service's own network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import openai

from tests.helpers.media import FIXTURES
from tests.helpers.service import JOB_DEADLINE_S, running_service, service_env
from tests.helpers.waiting import wait_until
from tests.helpers.webhook_receiver import receiving
from whisper_transcriber.service.webhooks.signing import generate_secret


def _serve_env(**settings: str) -> dict[str, str]:
    return service_env(WEBHOOK_BACKOFF_S="0.2", **settings)


def test_a_subscription_and_a_callback_hear_a_job_signed(database_url: str, tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    source = media / "museum.wav"
    shutil.copy(FIXTURES / "speech_a.wav", source)
    operator_secret, client_secret = generate_secret(), generate_secret()
    with (
        receiving(operator_secret) as operator,
        receiving(client_secret) as client,
    ):
        hooks = {"all": {"url": operator.url, "secret": operator_secret, "transcript": True}}
        env = _serve_env(WEBHOOKS=json.dumps(hooks), CALLBACK_ALLOW="127.0.0.1")
        with running_service(
            "--database-url", database_url, "--inbox", media, cwd=tmp_path, env=env
        ) as service:  # fmt: skip
            job_id = service.submit(
                source,
                callback_url=client.url,
                callback_secret=client_secret,
                callback_events=["done", "failed"],
            )
            service.wait_status(job_id, "done")
            wait_until(
                lambda: operator.events(job_id) == ["job.queued", "job.started", "job.done"],
                JOB_DEADLINE_S,
                "the subscription to hear the job's three events",
            )
            wait_until(lambda: client.events(job_id) == ["job.done"], 30, "the callback")
            deliveries = service.client.get("/webhooks/deliveries").json()
            one = service.client.get(f"/webhooks/deliveries/{deliveries[0]['id']}").json()

    every = operator.all() + client.all()
    assert all(r.verified for r in every)  # the library's own check of our signatures
    assert len({r.message_id for r in every}) == 4
    done = next(r for r in operator.all() if r.event == "job.done").payload
    assert done["data"]["status"] == "done" and done["data"]["id"] == job_id
    assert done["data"]["language"] == "en"
    assert "museum" in done["data"]["transcript"]["text"].lower()  # asked for inline
    started = next(r for r in operator.all() if r.event == "job.started").payload
    assert started["data"]["status"] == "running"  # the job as it was at the event
    callback_done = client.all()[0].payload
    assert "transcript" not in callback_done["data"]  # not asked for
    assert callback_done["data"]["source_path"] == str(source)

    assert sorted((d["subscription"], d["event"], d["status"]) for d in deliveries) == [
        ("request", "done", "delivered"),
        ("service:all", "done", "delivered"),
        ("service:all", "queued", "delivered"),
        ("service:all", "started", "delivered"),
    ]
    assert all(d["attempts"] == 1 and d["history"][0]["status"] == 200 for d in deliveries)
    assert "secret" not in json.dumps(deliveries)
    assert one["body"]["data"]["id"] == job_id


def test_the_openai_endpoint_takes_a_callback(database_url: str, tmp_path: Path) -> None:
    secret = generate_secret()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with receiving(secret) as receiver:
        env = _serve_env(CALLBACK_ALLOW="127.0.0.0/8", CALLBACK_SECRET=secret)
        with running_service(
            "--database-url", database_url, "--inbox", inbox, cwd=tmp_path, env=env
        ) as service:  # fmt: skip
            client = openai.OpenAI(base_url=f"{service.base_url}/v1", api_key="-", timeout=120)
            with (FIXTURES / "speech_b.flac").open("rb") as audio:
                answer = client.audio.transcriptions.create(
                    model="whisper-1",
                    file=audio,
                    extra_body={"callback_url": receiver.url, "callback_events": "done"},
                )
            wait_until(lambda: receiver.events() == ["job.done"], 30, "the callback")
    assert "quarterly" in answer.text.lower()
    (delivery,) = receiver.all()
    assert delivery.verified  # signed with the service's callback_secret


def test_a_request_cannot_point_a_callback_into_the_network(
    database_url: str, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    source = media / "museum.wav"
    shutil.copy(FIXTURES / "speech_a.wav", source)
    secret = generate_secret()
    with running_service(
        "--database-url", database_url, "--inbox", media, cwd=tmp_path, env=_serve_env()
    ) as service:  # fmt: skip
        for url, reason in (
            ("http://127.0.0.1:9/hook", "loopback"),
            ("http://169.254.169.254/latest/meta-data/", "link-local"),
            ("http://10.1.2.3/hook", "private"),
            ("http://[::1]/hook", "loopback"),
            ("file:///etc/passwd", "http"),
            ("http://user:pw@example.com/hook", "user"),
        ):
            answer = service.client.post(
                "/transcribe",
                json={"path": str(source), "callback_url": url, "callback_secret": secret},
            )
            assert answer.status_code == 400, (url, answer.text)
            assert reason in answer.json()["detail"], (url, answer.text)
        no_secret = service.client.post(
            "/transcribe", json={"path": str(source), "callback_url": "https://example.com/h"}
        )
        assert no_secret.status_code == 400
        assert "callback_secret" in no_secret.json()["detail"]
        assert service.client.get("/jobs").json()["items"] == []  # nothing was queued
