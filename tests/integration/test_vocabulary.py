"""Vocabulary through the real model: a name tiny.en misspells (tests/fixtures/vocabulary.flac,
"Kubernetes" heard as "Cuba to") is spelled right when an inbox's vocabulary file, its
hotwords, a request's hotwords or an initial prompt name it; without, it is not."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.media import FIXTURES
from whisper_transcriber.api.schemas import OptionsIn
from whisper_transcriber.db.values import JobOptions
from whisper_transcriber.service.inboxes import _inbox
from whisper_transcriber.service.settings import InboxSettings, load_settings
from whisper_transcriber.worker.engine import Engine

SPOKEN = str(FIXTURES / "vocabulary.flac")
TERM = "Kubernetes"


def test_a_term_is_spelled_right_only_when_the_vocabulary_names_it(
    engine: Engine, tmp_path: Path
) -> None:
    plain = engine.transcribe(SPOKEN, JobOptions(formats=("txt",)))
    assert TERM not in plain.text, plain.text

    terms = tmp_path / "terms.txt"
    terms.write_text("# this library's names\nKubernetes\n\nSiobhan Nguyen\nKubernetes\n")
    settings = load_settings(formats=["txt"])
    inbox = _inbox(InboxSettings(path=tmp_path, vocabulary=terms), settings)
    assert inbox.options.hotwords == "Kubernetes, Siobhan Nguyen"
    assert TERM in engine.transcribe(SPOKEN, inbox.options).text

    for asked in (OptionsIn(hotwords=TERM), OptionsIn(initial_prompt=f"{TERM}.")):
        options = asked.options(settings.job_options())
        assert TERM in engine.transcribe(SPOKEN, options).text, asked
