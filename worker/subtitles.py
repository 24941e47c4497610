"""Subtitle cues people can read: the transcript's words regrouped into cues that obey the rules of
subtitling (characters per line, lines per cue, time on screen, reading speed).

Whisper's segments are not subtitles: one may run to several sentences, two hundred characters
or ten seconds. The words (with their times) are grouped again: a cue ends where a sentence ends
if it can, else at clause punctuation, else between words, never across a change of speaker.
The grouping is the cheapest of all that fit (dynamic programming over where cues end), so a
long run-on is cut at its best places rather than wherever a line happens to fill up. Each cue's
text is then wrapped into balanced lines, and its time on screen stretched into the free time
after it for a minimum duration and a readable speed, never over the next cue.

Without word times (a transcript stored by an older version), a segment's time is shared among
its words by their length. Pure Python: the API renders subtitles without the model stack.
"""

from __future__ import annotations

import itertools
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from whisper_transcriber.db.transcript import Segment, Transcript
from whisper_transcriber.db.values import (
    SUBTITLE_CPS,
    SUBTITLE_LINE_CHARS,
    SUBTITLE_LINES,
    SUBTITLE_MAX_S,
    SUBTITLE_MIN_S,
    JobOptions,
)

# Where a cue may end, best first: a change of speaker (it must), a sentence's end, a pause or
# clause punctuation, anywhere between words. The cost of ending a cue at each.
_FORCED, _SENTENCE, _CLAUSE, _WORD = 0, 1, 2, 3
_BREAK_COST = {_FORCED: 0.0, _SENTENCE: 0.0, _CLAUSE: 2.0, _WORD: 6.0}
_CUE_COST = 1.0  # fewer, fuller cues
_SLOW_COST = 12.0  # per reading speed's worth over the maximum
_SHORT_COST = 8.0  # a cue that cannot stay the minimum time on screen
# A cue cut between words that also holds a clause's end: the piece of the next clause it
# starts ("..., because that") or the end of the last it finishes reads as a fragment.
_FRAGMENT_COST = 4.0
_PAUSE_S = 0.6  # silence that ends a thought as a comma does
# Latin, CJK (ideographic full stop, full-width ! and ?), Arabic and Devanagari sentence ends.
_SENTENCE_ENDS = frozenset(".!?\u2026\u3002\uff01\uff1f\u061f\u0964")
# Commas, semicolons and colons (also CJK's), and the dashes.
_CLAUSE_ENDS = frozenset(",;:\u2014\u2013\u3001\uff0c\uff1b\uff1a\u060c")
# Quotes and brackets that may close after a sentence's end: "He left." or (Laughs.)
_CLOSING = "\"')]\u201d\u2019\u00bb\uff09\u300d\u300f"


@dataclass(frozen=True)
class SubtitleRules:
    max_line_chars: int = SUBTITLE_LINE_CHARS
    max_lines: int = SUBTITLE_LINES
    max_cue_s: float = SUBTITLE_MAX_S
    min_cue_s: float = SUBTITLE_MIN_S
    max_cps: float = SUBTITLE_CPS

    @classmethod
    def of(cls, options: JobOptions) -> SubtitleRules | None:
        """The job's rules; None when it wants one cue per segment (subtitle_rules off)."""
        if not options.subtitle_rules:
            return None
        return cls(
            options.subtitle_line_chars,
            options.subtitle_lines,
            options.subtitle_max_s,
            options.subtitle_min_s,
            options.subtitle_cps,
        )


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]
    speaker: str | None = None

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def chars(self) -> int:
        return sum(map(len, self.lines))


@dataclass(frozen=True)
class _Word:
    text: str  # without the space before it
    spaced: bool  # whether a space separates it from the word before (not so in Chinese)
    start: float
    end: float
    speaker: str | None
    segment_end: bool = False  # the last word of a segment


def cues(transcript: Transcript, rules: SubtitleRules, *, labelled: bool = False) -> list[Cue]:
    """The transcript's words grouped into cues that obey the rules, in time order. labelled:
    each cue's first line starts with its speaker's name ("Ada: Hello."), counted in the line."""
    shown = _Shown(rules, labelled)
    words = _words(transcript.segments, shown.longest_word)
    if not words:
        return []
    ends = _cue_ends(words, shown)
    grouped = [words[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]
    return _timed(grouped, shown)


def _words(segments: Sequence[Segment], longest: int) -> list[_Word]:
    words: list[_Word] = []
    for segment in segments:
        found = [
            _Word(w.word.strip(), w.word[:1].isspace(), w.start, w.end, segment.speaker)
            for w in segment.words or ()
            if w.word.strip()
        ]
        if not found:
            found = _estimated(segment)
        for word in found:
            words.extend(_hard_split(word, longest))
        if words and found:
            last = words[-1]
            words[-1] = _Word(last.text, last.spaced, last.start, last.end, last.speaker, True)
    return words


def _estimated(segment: Segment) -> list[_Word]:
    """A segment's words without times of their own: its time shared by their length."""
    texts = segment.text.split()
    if not texts:
        return []
    total = sum(map(len, texts))
    span = max(segment.end - segment.start, 0.0)
    words = []
    at = segment.start
    for text in texts:
        end = at + span * len(text) / total
        words.append(_Word(text, True, at, end, segment.speaker))
        at = end
    return words


def _hard_split(word: _Word, limit: int) -> list[_Word]:
    """A word longer than a line (a URL, a sentence of Chinese as one token) in line-long parts."""
    if len(word.text) <= limit:
        return [word]
    parts = [word.text[i : i + limit] for i in range(0, len(word.text), limit)]
    step = (word.end - word.start) / len(parts)
    return [
        _Word(
            part,
            word.spaced if n == 0 else False,
            word.start + n * step,
            word.start + (n + 1) * step,
            word.speaker,
        )
        for n, part in enumerate(parts)
    ]


def _strength(words: Sequence[_Word], i: int) -> int:
    """How good a place the end of word i is to end a cue."""
    word = words[i]
    if i + 1 < len(words) and words[i + 1].speaker != word.speaker:
        return _FORCED
    last = word.text.rstrip(_CLOSING)[-1:]
    if last in _SENTENCE_ENDS and not _is_number_dot(word.text):
        return _SENTENCE
    pause = words[i + 1].start - word.end if i + 1 < len(words) else 0.0
    if last in _CLAUSE_ENDS or pause >= _PAUSE_S or word.segment_end:
        return _CLAUSE
    return _WORD


def _is_number_dot(text: str) -> bool:
    """ "3." in "chapter 3. point 2" reads on, but not "was 3." at a sentence's end: say a
    number before a dot ends a sentence only when the whole token is not a list number."""
    return len(text) <= 3 and text[:-1].isdigit() and text.endswith(".")


def _joined(words: Sequence[_Word]) -> str:
    return "".join((" " if w.spaced and n else "") + w.text for n, w in enumerate(words))


@dataclass(frozen=True)
class _Shown:
    """The rules, and whether each cue starts with its speaker's name."""

    rules: SubtitleRules
    labelled: bool

    @property
    def longest_label(self) -> int:
        """A speaker's name takes at most half a line: the words need the rest."""
        return self.rules.max_line_chars // 2

    @property
    def longest_word(self) -> int:
        """Longer words are cut: they must fit a line, after the name when it shares the line."""
        room = self.longest_label + 1 if self.labelled and self.rules.max_lines == 1 else 0
        return max(self.rules.max_line_chars - room, 1)

    def label(self, speaker: str) -> str:
        name = " ".join(speaker.split())
        if len(name) + 1 > self.longest_label:
            name = name[: max(self.longest_label - 2, 0)] + "\u2026"
        return name + ":"

    def label_width(self, first: _Word) -> int:
        """What the speaker's name adds to a cue starting with this word (0 without one)."""
        if not self.labelled or first.speaker is None:
            return 0
        return len(self.label(first.speaker)) + (1 if first.spaced else 0)

    def words(self, group: Sequence[_Word]) -> Sequence[_Word]:
        """What a cue of these words shows: the name first, when labelled and there is one."""
        speaker = group[0].speaker
        if not self.labelled or speaker is None:
            return group
        first = group[0]
        return [_Word(self.label(speaker), False, first.start, first.start, speaker), *group]


def _cue_ends(words: list[_Word], shown: _Shown) -> list[int]:
    """Where each cue ends (exclusive word indices), the cheapest grouping that fits the rules:
    cost[j] is the cheapest way to show words[:j], trying each cue words[i:j] that fits, i from
    j - 1 down, the cue's width and lines kept as it grows to the left (linear in the words)."""
    n = len(words)
    strengths = [_strength(words, i) for i in range(n)]
    cost = [0.0] + [math.inf] * n
    start_of = [0] * (n + 1)
    limit = shown.rules.max_line_chars
    for j in range(1, n + 1):
        last = words[j - 1]
        width = len(last.text)
        lines, first_line = 1, width  # filled from the right: the fewest lines, the first shortest
        inner_boundary = False
        for i in range(j - 1, -1, -1):
            if i < j - 1:
                if strengths[i] == _FORCED:
                    break  # a cue never spans a change of speaker (after word i)
                word, space = words[i], 1 if words[i + 1].spaced else 0
                width += len(word.text) + space
                if first_line + space + len(word.text) <= limit:
                    first_line += space + len(word.text)
                else:
                    lines, first_line = lines + 1, len(word.text)
                inner_boundary = inner_boundary or strengths[i] in (_SENTENCE, _CLAUSE)
            label = shown.label_width(words[i])
            needed = lines + (1 if label and first_line + label > limit else 0)
            if i < j - 1 and (
                needed > shown.rules.max_lines or last.end - words[i].start > shown.rules.max_cue_s
            ):
                break  # longer cues (smaller i) fit even less
            total = cost[i] + _cost(words, i, j, strengths, shown, width + label, inner_boundary)
            if total < cost[j]:
                cost[j], start_of[j] = total, i
    ends = []
    j = n
    while j > 0:
        ends.append(j)
        j = start_of[j]
    return ends[::-1]


def _cost(
    words: Sequence[_Word],
    i: int,
    j: int,
    strengths: Sequence[int],
    shown: _Shown,
    chars: int,
    inner_boundary: bool,
) -> float:
    """What showing words[i:j] (chars wide) as one cue costs: its end, a fragment it makes, and
    how far it falls short of the time on screen and the reading speed."""
    rules = shown.rules
    total = _CUE_COST + (_BREAK_COST[strengths[j - 1]] if j < len(words) else 0.0)
    cut_between_words = (j < len(words) and strengths[j - 1] == _WORD) or (
        i > 0 and strengths[i - 1] == _WORD
    )
    if cut_between_words and inner_boundary:
        total += _FRAGMENT_COST
    start = words[i].start
    free_until = words[j].start if j < len(words) else math.inf
    on_screen = min(start + rules.max_cue_s, free_until) - start  # the longest it can stay
    if on_screen < rules.min_cue_s:
        total += _SHORT_COST * (1 - on_screen / rules.min_cue_s)
    speed = chars / max(on_screen, 1e-3)
    if speed > rules.max_cps:
        total += _SLOW_COST * (speed - rules.max_cps) / rules.max_cps
    return total


def _wrap(group: Sequence[_Word], rules: SubtitleRules) -> tuple[str, ...] | None:
    """The words on the fewest lines of at most max_line_chars (at most max_lines), as even as
    can be: the longest line as short as possible. None when they do not fit."""
    texts = [word.text for word in group]
    gaps = [0] + [1 if word.spaced else 0 for word in group[1:]]
    ends = list(
        itertools.accumulate(len(text) + gap for text, gap in zip(texts, gaps, strict=True))
    )

    def width(a: int, b: int) -> int:  # words[a:b] on one line
        return ends[b - 1] - (ends[a - 1] if a else 0) - gaps[a]

    n = len(group)
    for count in range(1, min(rules.max_lines, n) + 1):
        # longest[k][b]: the shortest longest line putting words[:b] on k lines; cut: where the
        # last of them starts.
        longest = [[math.inf] * (n + 1) for _ in range(count + 1)]
        cut = [[0] * (n + 1) for _ in range(count + 1)]
        longest[0][0] = 0
        for k in range(1, count + 1):
            for b in range(k, n + 1):
                for a in range(k - 1, b):
                    candidate = max(longest[k - 1][a], width(a, b))
                    if candidate < longest[k][b]:
                        longest[k][b], cut[k][b] = candidate, a
        if longest[count][n] <= rules.max_line_chars:
            lines: list[str] = []
            b = n
            for k in range(count, 0, -1):
                a = cut[k][b]
                lines.append(_joined(group[a:b]))
                b = a
            return tuple(reversed(lines))
    return None


def _timed(grouped: list[list[_Word]], shown: _Shown) -> list[Cue]:
    """Each group as a cue on screen from its first word to its last, stretched into the free
    time after it for the minimum time and a readable speed, never over the next cue."""
    rules = shown.rules
    result: list[Cue] = []
    for n, group in enumerate(grouped):
        words = shown.words(group)
        lines = _wrap(words, rules) or (_joined(words),)
        start = group[0].start
        if result and start < result[-1].end:
            start = result[-1].end  # word times of two segments may overlap a little
        end = max(group[-1].end, start)
        chars = sum(map(len, lines))
        wanted = max(end, start + rules.min_cue_s, start + chars / rules.max_cps)
        end = min(wanted, start + rules.max_cue_s)
        if n + 1 < len(grouped):
            end = min(end, max(grouped[n + 1][0].start, start))
        if end <= start:  # no time at all between two words: a frame's worth
            end = start + 0.001
        result.append(Cue(start, end, lines, group[0].speaker))
    return _no_overlap(result)


def _no_overlap(result: list[Cue]) -> list[Cue]:
    fixed: list[Cue] = []
    for cue in result:
        if fixed and cue.start < fixed[-1].end:
            cue = Cue(fixed[-1].end, max(cue.end, fixed[-1].end + 0.001), cue.lines, cue.speaker)
        fixed.append(cue)
    return fixed


def broken_rules(shown: Sequence[Cue], rules: SubtitleRules) -> list[str]:
    """Every rule a list of cues breaks, said per cue (for tests and checks over real files).
    The minimum time and the reading speed count as broken only where the cue could have
    stayed longer: it ends before both the next cue and its maximum time."""
    problems = []
    for n, cue in enumerate(shown):
        where = f"cue {n + 1} ({cue.start:.3f}-{cue.end:.3f} {cue.text!r})"
        if len(cue.lines) > rules.max_lines:
            problems.append(f"{where}: {len(cue.lines)} lines")
        for line in cue.lines:
            if len(line) > rules.max_line_chars:
                problems.append(f"{where}: a line of {len(line)} characters")
            if not line.strip() or any(unicodedata.category(c) == "Cc" for c in line):
                problems.append(f"{where}: an empty line or a control character")
        duration = cue.end - cue.start
        if duration <= 0:
            problems.append(f"{where}: no time on screen")
        if duration > rules.max_cue_s + 1e-6:
            problems.append(f"{where}: {duration:.3f} s on screen")
        nxt = shown[n + 1].start if n + 1 < len(shown) else math.inf
        if cue.end > nxt + 1e-9:
            problems.append(f"{where}: overlaps the next cue")
        could_stay = cue.end + 1e-6 < min(nxt, cue.start + rules.max_cue_s)
        if could_stay and duration + 1e-6 < rules.min_cue_s:
            problems.append(f"{where}: only {duration:.3f} s on screen")
        if could_stay and cue.chars / max(duration, 1e-9) > rules.max_cps + 1e-6:
            problems.append(f"{where}: {cue.chars / duration:.1f} characters per second")
    return problems
