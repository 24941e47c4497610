"""Speaker labels through a real `serve` (SQLite; the integration tests run both databases): the
official openai client reading diarized_json, a Bazarr-shaped /asr call with diarize=true, and
renaming speakers, after which the transcript, its formats, search and the files the job wrote
say the names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openai

from tests.helpers.cli import clean_env
from tests.helpers.media import FIXTURES
from tests.helpers.service import running_service
from tests.helpers.waiting import wait_until
from whisper_transcriber.worker.audio_stream import blocks

CONVERSATION = FIXTURES / "conversation.flac"


def raw_pcm(path: Path) -> bytes:
    """What Bazarr sends with encode=false: headerless 16 kHz mono s16le."""
    samples = np.concatenate(list(blocks(str(path))))
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def test_speakers_through_openai_asr_and_renaming(sqlite_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with running_service(
        "--database-url", sqlite_url, "--inbox", inbox, cwd=tmp_path, env=clean_env()
    ) as service:  # fmt: skip
        client = openai.OpenAI(base_url=f"{service.base_url}/v1", api_key="none", timeout=120)
        with CONVERSATION.open("rb") as audio:
            diarized = client.audio.transcriptions.create(
                model="whisper-1", file=audio, response_format="diarized_json"
            )
        assert diarized.task == "transcribe" and diarized.duration > 30
        assert [s.speaker for s in diarized.segments][:1] == ["A"]
        assert {s.speaker for s in diarized.segments} == {"A", "B", "C"}
        assert all(
            s.type == "transcript.text.segment" and s.end > s.start for s in diarized.segments
        )
        assert "library" in diarized.text.lower()

        http = service.client
        http.timeout = 120
        bazarr = http.post(
            "/asr",
            params={"task": "transcribe", "language": "en", "output": "vtt", "encode": "false",
                    "diarize": "true", "min_speakers": "2", "max_speakers": "3"},
            files={"audio_file": ("audio_file", raw_pcm(CONVERSATION))},
        )  # fmt: skip
        assert bazarr.status_code == 200, bazarr.text
        vtt = bazarr.text
        # Named as whisper-asr-webservice's WhisperX engine names them.
        assert vtt.startswith("WEBVTT") and "<v SPEAKER_00>" in vtt and "<v SPEAKER_02>" in vtt
        refused = http.post(
            "/asr",
            params={"diarize": "true", "min_speakers": "3", "max_speakers": "2"},
            files={"audio_file": ("a.flac", CONVERSATION.read_bytes())},
        )
        assert refused.status_code == 422 and "min_speakers (3)" in refused.text

        job_id = int(bazarr.headers["location"].rsplit("/", 1)[1])
        speakers = http.get(f"/jobs/{job_id}/speakers").json()["speakers"]
        assert [s["label"] for s in speakers] == ["Speaker 1", "Speaker 2", "Speaker 3"]
        [written] = http.get(f"/jobs/{job_id}").json()["outputs"]  # the vtt beside the upload
        assert "<v Speaker 1>" in Path(written).read_text()  # written with the labels
        renamed = http.put(
            f"/jobs/{job_id}/speakers", json={"names": {"Speaker 1": "Ada", "Speaker 3": "Lin"}}
        )
        assert renamed.status_code == 200, renamed.text
        assert [s["name"] for s in renamed.json()["speakers"]] == ["Ada", "Speaker 2", "Lin"]

        def rewritten() -> bool:
            return not http.get(f"/jobs/{job_id}/speakers").json()["files_pending"]

        wait_until(rewritten, 30, "the job's files rewritten with the names")
        text = Path(written).read_text()
        assert "<v Ada>" in text and "<v Lin>" in text and "<v Speaker 2>" in text
        assert "Speaker 1" not in text
        srt = http.get(f"/jobs/{job_id}/transcript", params={"format": "srt"}).text
        assert "Ada: " in srt and "Lin: " in srt and "Speaker 1" not in srt
        hits = http.get("/transcripts/search", params={"q": "library"}).json()["items"]
        by_job = {hit["job_id"]: hit["speaker"] for hit in hits}  # the openai job's too
        assert by_job[job_id] in {"Ada", "Speaker 2", "Lin"}

        for names, status in (
            ({"Speaker 9": "Zed"}, 422),  # no such speaker
            ({"Speaker 2": "<script>"}, 422),  # would be a tag in WebVTT
            ({"Speaker 2": "a\nb"}, 422),
            ({"Speaker 2": "x" * 101}, 422),
            ({"Speaker 2": "Ada"}, 422),  # two speakers would read as one
        ):
            answer = http.put(f"/jobs/{job_id}/speakers", json={"names": names})
            assert answer.status_code == status, (names, answer.text)
        back = http.put(f"/jobs/{job_id}/speakers", json={"names": {"Speaker 1": ""}})
        assert [s["name"] for s in back.json()["speakers"]] == ["Speaker 1", "Speaker 2", "Lin"]
        assert http.put("/jobs/999999/speakers", json={"names": {}}).status_code == 404
        assert service.stop() == 0
