"""The languages Whisper knows, by faster-whisper's codes: one list for the settings, the inbox
options, the API's fields and GET /options.

Kept here as a plain tuple so that checking a language imports nothing heavy (faster-whisper
brings CTranslate2 and numpy); tests/unit/test_languages.py checks it equals faster-whisper's own list
(faster_whisper.tokenizer._LANGUAGE_CODES), so an upgrade that adds one is noticed.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

LANGUAGE_CODES: tuple[str, ...] = (
    "af", "am", "ar", "as", "az", "ba", "be", "bg", "bn", "bo", "br", "bs", "ca", "cs", "cy",
    "da", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fo", "fr", "gl", "gu", "ha", "haw",
    "he", "hi", "hr", "ht", "hu", "hy", "id", "is", "it", "ja", "jw", "ka", "kk", "km", "kn",
    "ko", "la", "lb", "ln", "lo", "lt", "lv", "mg", "mi", "mk", "ml", "mn", "mr", "ms", "mt",
    "my", "ne", "nl", "nn", "no", "oc", "pa", "pl", "ps", "pt", "ro", "ru", "sa", "sd", "si",
    "sk", "sl", "sn", "so", "sq", "sr", "su", "sv", "sw", "ta", "te", "tg", "th", "tk", "tl",
    "tr", "tt", "uk", "ur", "uz", "vi", "yi", "yo", "zh", "yue",
)  # fmt: skip


# What whisper.cpp's server and several clients send for "detect it": the same as no language.
DETECT = "auto"


def unknown_language(code: str) -> str:
    """Why a language is refused, with every code Whisper knows."""
    return f"unknown language {code!r}; Whisper knows {', '.join(LANGUAGE_CODES)}"


def known_language(code: str | None) -> str | None:
    """A language option as given: None (and "", and "auto") detects the language, a known code (in any
    case: EN is en) is kept in lower case, anything else is refused. A pydantic validator: its
    message reads without pydantic's "Value error, " before it."""
    if code is None or not code.strip() or code.strip().lower() == DETECT:
        return None
    normalized = code.strip().lower()
    if normalized not in LANGUAGE_CODES:
        raise PydanticCustomError("value_error", unknown_language(code))
    return normalized


# A language field (settings, API bodies and forms): refused with the list when Whisper lacks it.
Language = Annotated[str | None, AfterValidator(known_language)]


def known_languages(codes: list[str] | None) -> list[str] | None:
    """A list of languages (expected_languages): each a known code, each once; "auto" is none."""
    if codes is None:
        return None
    kept: list[str] = []
    for code in codes:
        normalized = known_language(code)
        if normalized is None:
            raise PydanticCustomError(
                "value_error", "expected_languages names languages, not '{code}'", {"code": code}
            )
        kept.append(normalized)
    return list(dict.fromkeys(kept))


# A list of languages (settings, inboxes, API bodies): each checked as a Language.
Languages = Annotated[list[str] | None, AfterValidator(known_languages)]
