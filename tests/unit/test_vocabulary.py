"""An inbox's vocabulary and hotwords (service/inboxes.py): terms read once each, joined to the
inbox's (or the service's) hotwords; a file that cannot be a vocabulary stops the start with one
line naming the inbox."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from whisper_transcriber.db.values import MAX_PROMPT_CHARS
from whisper_transcriber.service.inboxes import VOCABULARY_MAX_BYTES, _inbox
from whisper_transcriber.service.settings import InboxSettings, SettingError, load_settings


def test_terms_join_the_inboxs_or_the_services_hotwords(tmp_path: Path) -> None:
    terms = tmp_path / "terms.txt"
    terms.write_bytes("\ufeffAlembic\r\n  Siobhan Nguyen  \n# a comment\n\nAlembic\n".encode())
    service = load_settings(hotwords="Jellyfin")
    assert service.job_options().hotwords == "Jellyfin"
    inbox = _inbox(InboxSettings(path=tmp_path, vocabulary=terms), service).options
    assert inbox.hotwords == "Jellyfin, Alembic, Siobhan Nguyen"
    own = _inbox(InboxSettings(path=tmp_path, hotwords="Bazarr", vocabulary=terms), service)
    assert own.options.hotwords == "Bazarr, Alembic, Siobhan Nguyen"
    prompt = _inbox(InboxSettings.model_validate(f"{tmp_path}?initial_prompt=Hi."), service)
    assert (prompt.options.initial_prompt, prompt.options.hotwords) == ("Hi.", "Jellyfin")
    assert _inbox(InboxSettings(path=tmp_path), load_settings()).options.hotwords is None


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "No such file"),
        (b"\xff\xfeK\x00", "codec can't decode"),
        ("".join(f"Term{n}\n" for n in range(MAX_PROMPT_CHARS // 5)).encode(), "more than the"),
        (b"x" * (VOCABULARY_MAX_BYTES + 1), "more than the model reads"),
        (b"ok\nbad\x1bterm\n", "bad\\x1bterm"),
    ],
)
def test_a_file_that_is_no_vocabulary_stops_the_start(
    tmp_path: Path, content: bytes | None, says: str
) -> None:
    terms = tmp_path / "terms.txt"
    if content is not None:
        terms.write_bytes(content)
    with pytest.raises(SettingError, match=f"inbox {tmp_path}: vocabulary .*{re.escape(says)}"):
        _inbox(InboxSettings(path=tmp_path, vocabulary=terms), load_settings())
