"""Request bodies, forms and prompts past their limits, against a real service over real sockets:
413 with a readable reason, answered before the body has arrived, and nothing stored."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tokenizers

from tests.helpers.media import FIXTURES, place
from tests.helpers.paths import REPOSITORY
from tests.helpers.service import Service, running_service, service_env
from whisper_transcriber.api.limits import (
    FORM_OVERHEAD_BYTES,
    MAX_FORM_FIELD_BYTES,
    MAX_FORM_PARTS,
    MAX_JSON_BODY_BYTES,
)
from whisper_transcriber.db.values import MAX_PROMPT_CHARS
from whisper_transcriber.worker.engine import resolve_model

MAX_UPLOAD_MB = 1
WHISPER_PROMPT_TOKENS = 223  # 448 // 2 - 1: what faster-whisper keeps of a prompt
README = REPOSITORY / "README.md"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("limits")
    place(FIXTURES / "speech_a.wav", root / "inbox")
    (root / "uploads").mkdir()
    return root


@pytest.fixture(scope="module")
def service(folder: Path) -> Iterator[Service]:
    """The API alone: no workers, so jobs stay queued and none of the refusals waits on one."""
    env = service_env(
        DATABASE_URL=f"sqlite:///{folder / 'jobs.db'}",
        UPLOADS_DIR=str(folder / "uploads"),
        MAX_UPLOAD_MB=str(MAX_UPLOAD_MB),
    )
    with running_service("--role", "api", "--inbox", folder / "inbox", cwd=folder, env=env) as s:
        yield s
        assert s.stop() == 0


@pytest.fixture
def nothing_stored(service: Service, folder: Path) -> Iterator[None]:
    """After the test: no job was made and nothing is left in the uploads folder."""
    before = service.client.get("/jobs").json()["items"]
    yield
    assert service.client.get("/jobs").json()["items"] == before
    assert list((folder / "uploads").iterdir()) == []


def port_of(service: Service) -> int:
    return int(service.base_url.rsplit(":", 1)[1])


def answer_before_the_body(service: Service, head: bytes, body_start: bytes = b"") -> bytes:
    """Send a request head and the start of its body, never the rest; the answer that comes."""
    with socket.create_connection(("127.0.0.1", port_of(service)), timeout=30) as sock:
        sock.sendall(head + body_start)
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)  # a 30 s timeout: on no answer, the test fails here
            if not chunk:
                break
            received += chunk
    return received


def status_and_detail(raw: bytes) -> tuple[int, str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)["detail"]


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize("path", ["/transcribe", "/asr", "/v1/audio/transcriptions"])
def test_a_body_declared_too_large_is_refused_before_it_is_sent(
    service: Service, path: str
) -> None:
    json_head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 10737418240\r\n\r\n"  # 10 GiB, of which nothing comes
    ).encode()
    status, detail = status_and_detail(answer_before_the_body(service, json_head, b'{"pa'))
    assert status == 413
    assert detail == f"the request body is larger than the limit of {MAX_JSON_BODY_BYTES} bytes"

    form_limit = MAX_UPLOAD_MB * 1024 * 1024 + FORM_OVERHEAD_BYTES
    form_head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {form_limit + 1}\r\n\r\n"
    ).encode()
    status, detail = status_and_detail(answer_before_the_body(service, form_head, b"--b\r\n"))
    assert (status, detail) == (413, f"the upload is larger than the limit of {form_limit} bytes")


@pytest.mark.usefixtures("nothing_stored")
def test_a_chunked_json_body_is_refused_once_it_passes_the_limit(service: Service) -> None:
    head = (
        b"POST /transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b" " * 16384
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5))  # 80 KiB, no end
    status, detail = status_and_detail(answer_before_the_body(service, head, chunks))
    assert (status, detail) == (
        413,
        f"the request body is larger than the limit of {MAX_JSON_BODY_BYTES} bytes",
    )


@pytest.mark.usefixtures("nothing_stored")
def test_a_chunked_form_is_counted_as_it_arrives(service: Service) -> None:
    """A chunked upload declares no length: a file past the limit is refused by the form's
    parser, and bytes after the form's end (which no parser reads) by the body's counter, after
    the file itself was complete: it is removed all the same."""
    audio = (FIXTURES / "speech_a.wav").read_bytes()
    form_limit = MAX_UPLOAD_MB * 1024 * 1024 + FORM_OVERHEAD_BYTES

    def chunked(file_bytes: bytes, epilogue: int) -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="t.wav"\r\n\r\n'
        yield file_bytes
        yield b"\r\n--b--\r\n"
        for _ in range(epilogue // 65536):
            yield bytes(65536)

    headers = {"content-type": "multipart/form-data; boundary=b"}
    for content, reason in (
        (chunked(bytes(MAX_UPLOAD_MB * 1024 * 1024 + 1), 0), "the file is larger than the limit"),
        (chunked(audio, 2 * form_limit), f"the upload is larger than the limit of {form_limit}"),
    ):
        response = service.client.post("/transcribe", content=content, headers=headers)
        assert response.status_code == 413, response.text
        assert reason in response.json()["detail"]


@pytest.mark.usefixtures("nothing_stored")
def test_forms_past_their_limits_are_refused_and_leave_nothing(service: Service) -> None:
    audio = (FIXTURES / "speech_a.wav").read_bytes()
    too_many = {f"field{i}": "x" for i in range(MAX_FORM_PARTS)}
    cases = [
        ("/transcribe", "file", too_many, f"more than the limit of {MAX_FORM_PARTS} parts"),
        (
            "/transcribe",
            "file",
            {"language": "x" * (MAX_FORM_FIELD_BYTES + 1)},
            f"form field 'language' is longer than the limit of {MAX_FORM_FIELD_BYTES} bytes",
        ),
        ("/asr", "audio_file", too_many, f"more than the limit of {MAX_FORM_PARTS} parts"),
        (
            "/v1/audio/transcriptions",
            "file",
            {"model": "whisper-1", "prompt": "p" * (MAX_FORM_FIELD_BYTES + 1)},
            "form field 'prompt' is longer than the limit",
        ),
        ("/v1/audio/translations", "file", too_many, "parts"),
    ]
    for path, file_field, fields, reason in cases:
        response = service.client.post(path, files={file_field: ("talk.wav", audio)}, data=fields)
        assert response.status_code == 413, (path, response.text)
        assert reason in response.json()["detail"], (path, response.text)
    # Fields each within their limit, together past what a form may hold besides its file.
    many = {f"f{i}": "x" * (MAX_FORM_FIELD_BYTES - 1) for i in range(MAX_FORM_PARTS - 1)}
    assert sum(map(len, many.values())) > FORM_OVERHEAD_BYTES
    response = service.client.post("/transcribe", files={"file": ("t.wav", audio)}, data=many)
    assert response.status_code == 413
    assert "fields and part headers are larger than the limit" in response.json()["detail"]


@pytest.mark.usefixtures("nothing_stored")
def test_a_prompt_longer_than_the_model_reads_is_refused(service: Service, folder: Path) -> None:
    audio = (FIXTURES / "speech_a.wav").read_bytes()
    source = str(folder / "inbox" / "speech_a.wav")
    long = "a" * (MAX_PROMPT_CHARS + 1)
    refused = [
        service.client.post("/transcribe", json={"path": source, "initial_prompt": long}),
        service.client.post(
            "/transcribe", files={"file": ("t.wav", audio)}, data={"initial_prompt": long}
        ),
        service.client.post(
            "/asr", params={"initial_prompt": long}, files={"audio_file": ("t.wav", audio)}
        ),
        service.client.post(
            "/v1/audio/transcriptions",
            files={"file": ("t.wav", audio)},
            data={"model": "whisper-1", "prompt": long},
        ),
        service.client.post("/transcribe", json={"path": source, "hotwords": long}),
        service.client.post(
            "/transcribe", files={"file": ("t.wav", audio)}, data={"hotwords": long}
        ),
    ]
    for response in refused:
        assert response.status_code == 413, response.text
        detail = response.json()["detail"]
        assert f"is {MAX_PROMPT_CHARS + 1} characters long; the limit is {MAX_PROMPT_CHARS}" in (
            detail
        )
        assert "223 tokens" in detail


def test_a_prompt_at_the_limit_is_taken(service: Service, folder: Path) -> None:
    source = str(folder / "inbox" / "speech_a.wav")
    prompt = "é" * MAX_PROMPT_CHARS  # characters, not bytes
    response = service.client.post("/transcribe", json={"path": source, "initial_prompt": prompt})
    assert response.status_code == 202, response.text
    assert response.json()["options"]["initial_prompt"] == prompt
    hotwords = "Kubernetes, Siobhan Nguyen"
    again = service.client.post(
        "/transcribe", json={"path": source, "hotwords": hotwords, "force": True}
    )
    assert again.status_code == 202 and again.json()["options"]["hotwords"] == hotwords
    assert service.client.delete(f"/jobs/{again.json()['id']}").status_code == 200
    assert service.client.delete(f"/jobs/{response.json()['id']}").status_code == 200


def test_the_prompt_limit_holds_all_the_model_reads_of_english_prose() -> None:
    """Every stretch of 223 tokens of the README's prose (English, the language with the most
    characters per token) is shorter than MAX_PROMPT_CHARS: the limit never cuts what the
    model would use. Measured with the bundled model's own tokenizer."""
    model = Path(resolve_model("bundled").name_or_path)
    tokenizer = tokenizers.Tokenizer.from_file(str(model / "tokenizer.json"))
    prose = " ".join(re.sub(r"[`|*#\[\]()<>]", " ", README.read_text()).split())
    ids = tokenizer.encode(" " + prose).ids
    assert len(ids) > 10 * WHISPER_PROMPT_TOKENS
    longest = max(
        len(tokenizer.decode(ids[i : i + WHISPER_PROMPT_TOKENS]))
        for i in range(0, len(ids) - WHISPER_PROMPT_TOKENS, 7)
    )
    assert WHISPER_PROMPT_TOKENS * 3 < longest < MAX_PROMPT_CHARS


def test_an_early_answer_is_read_by_a_client_still_sending(service: Service) -> None:
    """A 413 sent while the client is still sending its body reaches it (the rest is read and
    dropped, not reset), and the connection serves the next request."""
    with httpx.Client(base_url=service.base_url, timeout=30) as client:
        too_big = client.post("/transcribe", content=b"{" + b" " * (4 * MAX_JSON_BODY_BYTES))
        assert too_big.status_code == 413
        assert client.get("/health").status_code == 200
