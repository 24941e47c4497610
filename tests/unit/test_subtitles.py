"""Subtitle cues (worker/subtitles.py): the cases that trip subtitle makers (long sentences, run-on
segments, very short words, non-Latin scripts, numbers, speakers, words without times) and, for
any transcript hypothesis makes up, every cue obeys every rule."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from whisper_transcriber.db.transcript import Segment, Transcript, Word
from whisper_transcriber.db.values import JobOptions, stored_options
from whisper_transcriber.worker.outputs import render, rendered
from whisper_transcriber.worker.subtitles import (
    FRAME_MS,
    Cue,
    SubtitleRules,
    broken_rules,
    cues,
)

RULES = SubtitleRules()


def spoken(text: str, start: float = 0.0, per_char: float = 0.06, speaker: str | None = None,
           spaced: bool = True, gap: float = 0.0) -> Segment:  # fmt: skip
    """A segment whose words take time by their length, as speech does (about 16 characters a
    second by default)."""
    words = []
    at = start
    tokens = text.split() if spaced else list(text)
    for token in tokens:
        end = at + max(len(token), 1) * per_char
        words.append(Word(at, end, (" " if spaced else "") + token, 0.9, speaker))
        at = end + gap
    return Segment(0, start, at, (" " if spaced else "") + text, tuple(words), speaker)


def shown(*segments: Segment, labelled: bool = False, rules: SubtitleRules = RULES) -> list[Cue]:
    found = cues(Transcript("en", 1.0, 600.0, segments), rules, labelled=labelled)
    assert broken_rules(found, rules) == []
    return found


def texts(found: list[Cue]) -> list[str]:
    return [cue.text for cue in found]


def test_a_short_segment_is_one_cue_on_one_line() -> None:
    [cue] = shown(spoken("Ask not what your country can do for you."))
    assert cue.lines == ("Ask not what your country can do for you.",)
    assert cue.start == 0.0 and cue.end >= 1.0


def test_a_long_sentence_is_cut_at_its_clauses_in_balanced_lines() -> None:
    sentence = (
        "We choose to go to the moon in this decade and do the other things, not because they "
        "are easy, but because they are hard, because that goal will serve to organize and "
        "measure the best of our energies and skills."
    )
    found = shown(spoken(sentence))
    assert " ".join(texts(found)) == sentence
    # Cues end at the commas; the last clause, longer than a cue, is the one cut between words.
    assert texts(found)[:2] == [
        "We choose to go to the moon in this decade and do the other things,",
        "not because they are easy, but because they are hard,",
    ]
    assert texts(found)[2].startswith("because that goal") and len(found) == 4
    for cue in found:  # two lines are about as long as each other
        if len(cue.lines) == 2:
            assert abs(len(cue.lines[0]) - len(cue.lines[1])) <= 12, cue.lines


def test_sentence_ends_come_before_commas_and_words() -> None:
    found = shown(
        spoken("It was late. The train, which was crowded, had stopped outside the station again.")
    )
    assert texts(found)[0] == "It was late." or texts(found)[0].startswith("It was late. ")
    assert not any(text.startswith(("train", "which")) for text in texts(found))


def test_a_run_on_segment_of_many_sentences_becomes_many_cues() -> None:
    run_on = " ".join(f"This is sentence number {n} of a long run." for n in range(1, 13))
    found = shown(spoken(run_on))
    assert " ".join(texts(found)) == run_on
    assert len(found) >= 6
    assert all(text.endswith(".") for text in texts(found))


def test_fast_short_words_stay_readable_by_using_the_free_time_after_them() -> None:
    quick = spoken("I. Am. So. Very. Quick. Now.", per_char=0.02)  # 50 characters a second
    later = spoken("And then silence.", start=30.0)
    found = shown(quick, later)
    first = found[0]
    assert first.chars / (first.end - first.start) <= RULES.max_cps
    assert first.end - first.start >= RULES.min_cue_s


def test_a_short_word_alone_stays_a_second_unless_the_next_cue_comes_first() -> None:
    found = shown(spoken("Yes.", per_char=0.05), spoken("No, I never said that.", start=5.0))
    assert found[0].end - found[0].start >= RULES.min_cue_s
    crowded = shown(
        spoken("Yes.", speaker="A", per_char=0.05),
        spoken("No, I never said that.", start=0.3, speaker="B"),
    )
    assert crowded[0].end == crowded[1].start  # as long as it can: until the next


def test_speakers_never_share_a_cue_and_their_names_count_in_the_line() -> None:
    found = shown(
        spoken("Do we have enough staff for the evening shift tonight?", speaker="Ada Lovelace"),
        spoken("Yes.", start=4.0, speaker="Grace"),
        labelled=True,
    )
    assert [cue.speaker for cue in found][-1] == "Grace"
    assert found[0].lines[0].startswith("Ada Lovelace: ")
    assert found[-1].lines == ("Grace: Yes.",)
    assert all(len(line) <= RULES.max_line_chars for cue in found for line in cue.lines)


def test_hostile_times_and_tiny_rules_never_crash_or_make_unreadable_cues() -> None:
    """Found by review: a minimum of 0 with overlapping words divided by zero; words sharing one
    moment made 0 ms cues; a reading speed near 0 made one cue of everything."""
    ended = spoken("It ended. Yes.", start=8.0, per_char=0.1)
    early = spoken("Next one.", start=ended.end - 0.5)
    shown(ended, early, rules=SubtitleRules(min_cue_s=0.0))
    same = Segment(0, 1.5, 1.5, " moon. sun. star. sky.",
                   tuple(Word(0.0015, 0.0015, f" {w}.", 0.9) for w in ("moon", "sun", "star", "sky")))  # fmt: skip
    found = shown(same, rules=SubtitleRules(max_line_chars=10, max_lines=1))
    assert " ".join(texts(found)) == "moon. sun. star. sky." and len(found) > 1
    assert all(round(c.end * 1000) - round(c.start * 1000) >= FRAME_MS for c in found)
    many = Segment(0, 0.0, 0.0, "x", tuple(Word(0.0, 0.0, f" w{i}.", 0.9) for i in range(300)))
    assert len(shown(many, rules=SubtitleRules(max_cps=1.0))) > 30
    lost = Segment(0, 0.0, 1.0, " a b", (Word(math.nan, 1.0, " a", 0.9), Word(0.5, 1.0, " b", 0.9)))
    assert texts(shown(lost)) == ["b"]
    assert broken_rules([Cue(math.nan, 1.0, ("x",))], RULES)


def test_a_long_word_is_cut_only_when_no_line_holds_it_and_names_keep_their_space() -> None:
    german = "Der Kapitan der Donaudampfschifffahrtsgesellschaft sprach gestern lange."
    one_line = SubtitleRules(max_lines=1)
    assert "Donaudampfschifffahrtsgesellschaft" in " ".join(
        texts(shown(spoken(german), labelled=True, rules=one_line))
    )
    url = "https://example.com/products/subtitles/index.html/and/more/of/it"
    found = shown(spoken(f"Visit {url}", speaker="Speaker 1"), labelled=True, rules=one_line)
    assert all(cue.lines[0].startswith("Speaker 1: ") for cue in found), texts(found)
    # A word wider than a line is cut, and its pieces stay in one cue where two lines hold them,
    # even where a piece happens to end in a dot.
    long_url = "https://example.com/" + "subtitles/" * 2 + "a." + "b" * 20
    assert long_url[41] == "."
    words = "Please go to the page at " + long_url + " and read every part of it. Thank you all."
    cut = shown(spoken(words))
    assert any(long_url in cue.text.replace(" ", "") for cue in cut), texts(cut)


def test_titles_and_quoted_dots_do_not_end_a_sentence() -> None:
    text = "We finally met Mr. Smith and his wife at the station, and he said stop. and then left."
    found = shown(spoken(text), rules=SubtitleRules(max_line_chars=30))
    assert not any(cue.text.endswith("Mr.") for cue in found), texts(found)


def test_chinese_without_spaces_is_cut_between_characters() -> None:
    comma = "\uff0c"  # the full-width comma
    text = f"我们今天讨论图书馆新的开放时间{comma}学生们放学后才来{comma}所以周四晚上应该开得更晚一些。"
    found = shown(spoken(text, spaced=False, per_char=0.2), rules=SubtitleRules(max_line_chars=16))
    assert "".join(texts(found)).replace(" ", "") == text
    assert all(" " not in line for cue in found for line in cue.lines)
    # A Chinese character takes two columns: 8 of them fill a line of 16.
    assert max(len(line) for cue in found for line in cue.lines) <= 8
    assert texts(found)[0].endswith(comma)  # at a clause


def test_arabic_and_cyrillic_words_keep_their_order() -> None:
    arabic = "نحن نختار الذهاب إلى القمر في هذا العقد، ليس لأنه سهل، بل لأنه صعب."
    russian = "Мы выбираем полёт на Луну в этом десятилетии, не потому что это легко."
    for text in (arabic, russian):
        assert " ".join(texts(shown(spoken(text)))) == text


def test_numbers_are_not_sentence_ends_or_cut_apart() -> None:
    text = "The budget grew by 3.5 percent to 1,250,000 dollars in 2024. Chapter 3. begins now."
    found = shown(spoken(text))
    joined = " ".join(texts(found))
    assert joined == text
    assert all(not t.startswith(("5 percent", "250,000", "begins")) for t in texts(found))


def test_a_word_longer_than_a_line_is_cut_to_fit() -> None:
    url = "https://example.org/" + "a" * 80
    found = shown(spoken(f"Visit {url} today."))
    assert "".join(line for cue in found for line in cue.lines).replace(" ", "") == (
        f"Visit{url}today."
    )


def test_words_without_times_share_their_segment_time() -> None:
    segment = Segment(0, 10.0, 20.0, " " + " ".join(["word"] * 40) + ".")
    found = shown(segment)
    assert found[0].start == 10.0 and found[-1].end <= 20.0 + RULES.max_cue_s
    assert sum(len(cue.text.split()) for cue in found) == 40


def test_overlapping_word_times_never_make_cues_overlap() -> None:
    first = spoken("The first part of what was said ends here.", start=0.0)
    second = spoken("The second part begins a little early.", start=first.end - 0.5)
    shown(first, second)


def test_a_word_held_past_the_longest_time_on_screen_is_cut_short() -> None:
    held = Segment(0, 0.0, 12.0, " Hello.", (Word(0.0, 12.0, " Hello.", 0.9),))
    [cue] = shown(held)
    assert cue.end - cue.start <= RULES.max_cue_s


def test_nothing_said_is_no_cue() -> None:
    assert cues(Transcript("en", 1.0, 5.0, ()), RULES) == []
    assert cues(Transcript("en", 1.0, 5.0, (Segment(0, 0.0, 1.0, "  "),)), RULES) == []


_WORDS = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz\u00e9\u4e2d\u6587\u0627\u0644.,?!-"),
    min_size=1,
    max_size=14,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    st.lists(
        st.tuples(
            st.lists(_WORDS, min_size=1, max_size=40),
            st.floats(-0.5, 3.0),  # silence before the segment (below 0: overlapping the last)
            st.sampled_from([0.0, 0.005, 0.02, 0.06, 0.3]),  # seconds a character (0: no time)
            st.sampled_from([None, "Ada", "Grace Hopper"]),
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(
        [
            RULES,
            SubtitleRules(max_line_chars=20, max_lines=1, max_cue_s=3.0, max_cps=12.0),
            SubtitleRules(max_line_chars=32, max_lines=3, min_cue_s=0.5),
            SubtitleRules(max_line_chars=10, max_lines=4, min_cue_s=0.0, max_cps=1.0),
        ]
    ),
    st.booleans(),
)
def test_every_cue_obeys_every_rule(
    segments: list[tuple[list[str], float, float, str | None]],
    rules: SubtitleRules,
    labelled: bool,
) -> None:
    made = []
    at = 0.0
    for words, silence, per_char, speaker in segments:
        start = max(at + silence, 0.0)
        segment = spoken(" ".join(words), start=start, per_char=per_char, speaker=speaker)
        made.append(segment)
        at = segment.end
    found = shown(*made, labelled=labelled, rules=rules)
    if not labelled:  # every word shown, once, in order
        said = "".join(w for words, *_ in segments for w in words)
        assert "".join(t.replace(" ", "") for t in texts(found)) == said


def test_a_jobs_srt_and_vtt_are_cues_and_off_is_one_cue_per_segment() -> None:
    long = spoken(
        "We choose to go to the moon in this decade and do the other things, not because they "
        "are easy, but because they are hard.",
        speaker="Ada",
    )
    transcript = Transcript("en", 1.0, 10.0, (long,))
    options = JobOptions(diarize=True)
    srt = rendered(transcript, "srt", options)
    assert srt.startswith("1\n00:00:00,000 --> ") and "\n2\n" in srt
    assert "Ada: We choose to go" in srt and srt.count("Ada:") == srt.count(" --> ")
    assert all(len(line) <= RULES.max_line_chars for line in srt.splitlines() if "-->" not in line)
    vtt = rendered(transcript, "vtt", options)
    assert vtt.startswith("WEBVTT\n\n") and vtt.count("<v Ada>") == vtt.count(" --> ") > 1
    off = options.model_copy(update={"subtitle_rules": False})
    assert rendered(transcript, "srt", off) == render(transcript, "srt")
    assert rendered(transcript, "vtt", off) == render(transcript, "vtt")
    narrow = options.model_copy(update={"subtitle_line_chars": 20, "subtitle_lines": 1})
    text = [line for line in rendered(transcript, "srt", narrow).splitlines() if "Ada" in line]
    assert text and max(map(len, text)) <= 20


def test_words_kept_for_subtitles_are_shown_only_where_asked_for() -> None:
    transcript = Transcript("en", 1.0, 3.0, (spoken("Hello there."),))
    assert JobOptions().subtitle_words and JobOptions().keeps_words  # srt and vtt by default
    assert not JobOptions(formats=("txt", "json")).keeps_words
    assert not JobOptions(subtitle_rules=False).keeps_words
    assert '"words"' not in rendered(transcript, "json", JobOptions())
    assert '"words"' in rendered(transcript, "json", JobOptions(word_timestamps=True))


def test_jobs_stored_before_subtitle_rules_render_as_they_did() -> None:
    assert not stored_options({"formats": ["srt"]}).subtitle_rules
    assert stored_options(JobOptions().model_dump(mode="json")).subtitle_rules
    with pytest.raises(ValidationError, match="subtitle_min_s"):
        JobOptions(subtitle_min_s=3.0, subtitle_max_s=2.0)


def test_subtitle_rules_from_settings_inboxes_and_requests(tmp_path: Path) -> None:
    from whisper_transcriber.api.schemas import OptionsIn
    from whisper_transcriber.service.inboxes import _inbox
    from whisper_transcriber.service.settings import InboxSettings, SettingError, load_settings

    assert load_settings().job_options().subtitle_rules  # on by default
    with pytest.raises(SettingError, match=r"subtitle_min_s \(8\) is more than subtitle_max_s"):
        load_settings(subtitle_min_s=8.0)
    with pytest.raises(SettingError, match="subtitle_line_chars"):
        load_settings(subtitle_line_chars=5)
    settings = load_settings(subtitle_line_chars=32, subtitle_cps=17.0)
    assert settings.job_options().subtitle_line_chars == 32
    # An inbox's own rules over the service's; "off" as a flag's query says it.
    inbox = _inbox(InboxSettings.model_validate(f"{tmp_path}?subtitle_rules=off"), settings)
    assert not inbox.options.subtitle_rules and inbox.options.subtitle_cps == 17.0
    narrow = _inbox(InboxSettings(path=tmp_path, subtitle_lines=1), settings).options
    assert (narrow.subtitle_lines, narrow.subtitle_line_chars) == (1, 32)
    with pytest.raises(SettingError, match=f"inbox {tmp_path}: subtitle_min_s"):
        _inbox(InboxSettings(path=tmp_path, subtitle_max_s=0.5), settings)
    asked = OptionsIn(subtitle_max_s=5.0).options(settings.job_options())
    assert (asked.subtitle_max_s, asked.subtitle_line_chars) == (5.0, 32)
    with pytest.raises(ValidationError):
        OptionsIn(subtitle_cps=0)
