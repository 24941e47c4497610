"""Subtitle cues people can read: the transcript's words regrouped into cues that obey the rules of
subtitling (characters per line, lines per cue, time on screen, reading speed).

Whisper's segments are not subtitles: one may run to several sentences, two hundred characters
or ten seconds. The words (with their times) are grouped again: a cue ends where a sentence ends
if it can, else at clause punctuation, else between words, never across a change of speaker.
The grouping is the cheapest of all that fit (dynamic programming over where cues end), so a
long run-on is cut at its best places rather than wherever a line happens to fill up. Each cue's
text is then wrapped into balanced lines, and its time on screen stretched into the free time
after it for a minimum duration and a readable speed, never over the next cue.

Lines are measured in columns: a Chinese or Japanese character (wide) takes two, a combining
mark none. Times are whole milliseconds, as the files write them, and every cue stays at least a
frame. Without word times (a transcript stored by an older version), a segment's time is shared
among its words by their length. Pure Python: the API renders subtitles without the model stack.
"""

from __future__ import annotations

import dataclasses
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
# clause punctuation, anywhere between words, inside a word cut to fit a line. The cost of ending
# a cue at each.
_FORCED, _SENTENCE, _CLAUSE, _WORD, _INSIDE = 0, 1, 2, 3, 4
_BREAK_COST = {_FORCED: 0.0, _SENTENCE: 0.0, _CLAUSE: 2.0, _WORD: 6.0, _INSIDE: 60.0}
_CUE_COST = 1.0  # fewer, fuller cues
_SLOW_COST = 12.0  # per reading speed's worth over the maximum
_SHORT_COST = 8.0  # a cue that cannot stay the minimum time on screen
# A cue cut between words that also holds a clause's end: the piece of the next clause it
# starts ("..., because that") or the end of the last it finishes reads as a fragment.
_FRAGMENT_COST = 4.0
_PAUSE_S = 0.6  # silence that ends a thought as a comma does
FRAME_MS = 40  # the shortest a cue is shown: a frame at 25 fps
# Latin, CJK (ideographic full stop, full-width ! and ?), Arabic and Devanagari sentence ends.
_SENTENCE_ENDS = frozenset(".!?\u2026\u3002\uff01\uff1f\u061f\u0964")
# Commas, semicolons and colons (also CJK's), and the dashes.
_CLAUSE_ENDS = frozenset(",;:\u2014\u2013\u3001\uff0c\uff1b\uff1a\u060c")
# Quotes and brackets that may close after a sentence's end: "He left." or (Laughs.)
_CLOSING = "\"')]\u201d\u2019\u00bb\uff09\u300d\u300f"
# Dots that end a title or an abbreviation, not a sentence ("Mr. Smith").
_ABBREVIATIONS = frozenset(
    ("mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "sr.", "jr.", "vs.", "mt.", "e.g.", "i.e.")
)


def display_width(text: str) -> int:
    """The columns a text takes on screen: a wide or full-width character (Chinese, Japanese,
    Korean) two, a combining mark or a format character (a joiner) none, any other one."""
    width = 0
    for character in text:
        if unicodedata.category(character) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(character) in ("W", "F") else 1
    return width


def _reading_chars(lines: Sequence[str]) -> int:
    """The characters a reader reads in these lines (marks and joiners are part of the one
    before; a line break is read as a space)."""
    marks = ("Mn", "Me", "Cf")
    return sum(unicodedata.category(c) not in marks for c in "".join(lines)) + len(lines) - 1


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
        """What reading it takes: its characters (a line break read as a space)."""
        return _reading_chars(self.lines)


@dataclass(frozen=True)
class _Word:
    text: str  # without the space before it
    spaced: bool  # whether a space separates it from the word before (not so in Chinese)
    start: float
    end: float
    speaker: str | None
    segment_end: bool = False  # the last word of a segment
    continues: bool = False  # a piece of a word cut to fit a line, the next piece after it

    @property
    def width(self) -> int:
        return display_width(self.text)


def cues(transcript: Transcript, rules: SubtitleRules, *, labelled: bool = False) -> list[Cue]:
    """The transcript's words grouped into cues that obey the rules, in time order. labelled:
    each cue's first line starts with its speaker's name ("Ada: Hello."), counted in the line."""
    shown = _Shown(rules, labelled)
    words = _words(transcript.segments, shown)
    if not words:
        return []
    ends = _cue_ends(words, shown)
    grouped = [words[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]
    return _timed(grouped, shown)


def _words(segments: Sequence[Segment], shown: _Shown) -> list[_Word]:
    words: list[_Word] = []
    for segment in segments:
        found = [
            _Word(w.word.strip(), w.word[:1].isspace(), w.start, w.end, segment.speaker)
            for w in segment.words or ()
            if w.word.strip() and math.isfinite(w.start) and math.isfinite(w.end)
        ]
        if not found:
            found = _estimated(segment)
        for word in found:
            words.extend(_hard_split(word, shown.longest_word(word.speaker)))
        if words and found:
            words[-1] = dataclasses.replace(words[-1], segment_end=True)
    return words


def _estimated(segment: Segment) -> list[_Word]:
    """A segment's words without times of their own: its time shared by their length."""
    texts = segment.text.split()
    if not texts or not (math.isfinite(segment.start) and math.isfinite(segment.end)):
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
    """A word wider than a line (a URL, a sentence of Chinese as one token) in pieces of at most
    a line, a mark kept with the character it belongs to; time shared by their length."""
    if word.width <= limit:
        return [word]
    parts: list[str] = [""]
    for character in word.text:
        if parts[-1] and display_width(parts[-1] + character) > limit:
            parts.append("")
        parts[-1] += character
    step = (word.end - word.start) / len(parts)
    last = len(parts) - 1
    return [
        dataclasses.replace(
            word,
            text=part,
            spaced=word.spaced if n == 0 else False,
            start=word.start + n * step,
            end=word.start + (n + 1) * step,
            segment_end=word.segment_end and n == last,
            continues=n < last,
        )
        for n, part in enumerate(parts)
    ]


def _strength(words: Sequence[_Word], i: int) -> int:
    """How good a place the end of word i is to end a cue."""
    word = words[i]
    following = words[i + 1] if i + 1 < len(words) else None
    if following is not None and following.speaker != word.speaker:
        return _FORCED
    if word.continues:
        return _INSIDE
    last = word.text.rstrip(_CLOSING)[-1:]
    if last in _SENTENCE_ENDS and not _is_number_dot(word.text):
        if word.text.lower().rstrip(_CLOSING) in _ABBREVIATIONS:
            return _WORD
        if following is None or not following.text[:1].islower():
            return _SENTENCE
        return _CLAUSE  # '"Stop." and then': a dot that the sentence reads on after
    pause = following.start - word.end if following is not None else 0.0
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

    def longest_word(self, speaker: str | None) -> int:
        """Wider words are cut: they must fit a line, after the name when a cue of one line
        starts with it."""
        named = self.labelled and speaker is not None and self.rules.max_lines == 1
        return max(self.rules.max_line_chars - (self.longest_label + 1 if named else 0), 2)

    def label(self, speaker: str) -> str:
        """The speaker's name as a cue starts with it, "Ada:", cut to half a line."""
        name = " ".join(speaker.split())
        if display_width(name) + 1 > self.longest_label:
            while name and display_width(name) + 2 > self.longest_label:
                name = name[:-1]
            name += "\u2026"
        return name + ":"

    def label_width(self, first: _Word) -> int:
        """What the speaker's name and the space after it add to a cue starting with this word
        (0 without one)."""
        if not self.labelled or first.speaker is None:
            return 0
        return display_width(self.label(first.speaker)) + 1

    def words(self, group: Sequence[_Word]) -> Sequence[_Word]:
        """What a cue of these words shows: the name first, when labelled and there is one."""
        first = group[0]
        if not self.labelled or first.speaker is None:
            return group
        name = _Word(self.label(first.speaker), False, first.start, first.start, first.speaker)
        return [name, dataclasses.replace(first, spaced=True), *group[1:]]


def _cue_ends(words: list[_Word], shown: _Shown) -> list[int]:
    """Where each cue ends (exclusive word indices), the cheapest grouping that fits the rules:
    cost[j] is the cheapest way to show words[:j], trying each cue words[i:j] that fits, i from
    j - 1 down, the cue's width and lines kept as it grows to the left (linear in the words)."""
    n = len(words)
    strengths = [_strength(words, i) for i in range(n)]
    widths = [word.width for word in words]
    cost = [0.0] + [math.inf] * n
    start_of = [0] * (n + 1)
    limit = shown.rules.max_line_chars
    for j in range(1, n + 1):
        last = words[j - 1]
        width = widths[j - 1]
        lines, first_line = 1, width  # filled from the right: the fewest lines, the first shortest
        inner_boundary = False
        for i in range(j - 1, -1, -1):
            if i < j - 1:
                if strengths[i] == _FORCED:
                    break  # a cue never spans a change of speaker (after word i)
                space = 1 if words[i + 1].spaced else 0
                width += widths[i] + space
                if first_line + space + widths[i] <= limit:
                    first_line += space + widths[i]
                else:
                    lines, first_line = lines + 1, widths[i]
                inner_boundary = inner_boundary or strengths[i] in (_SENTENCE, _CLAUSE)
            label = shown.label_width(words[i])
            needed = lines + (1 if label and first_line + label > limit else 0)
            if i < j - 1 and (
                needed > shown.rules.max_lines or last.end - words[i].start > shown.rules.max_cue_s
            ):
                break  # longer cues (smaller i) fit even less
            total = cost[i] + _cost(words, i, j, strengths, shown, width + label, inner_boundary)
            if i == j - 1 or total < cost[j]:  # a word alone is always a way
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
    if i > 0 and strengths[i - 1] == _INSIDE:
        total += _BREAK_COST[_INSIDE]  # it starts with the rest of a word
    cut_between_words = (j < len(words) and strengths[j - 1] == _WORD) or (
        i > 0 and strengths[i - 1] == _WORD
    )
    if cut_between_words and inner_boundary:
        total += _FRAGMENT_COST
    start = words[i].start
    free_until = words[j].start if j < len(words) else math.inf
    # The longest it can stay (none when the next cue's words start before its own).
    on_screen = max(min(start + rules.max_cue_s, free_until) - start, 0.0)
    if rules.min_cue_s > 0 and on_screen < rules.min_cue_s:
        total += _SHORT_COST * (1 - on_screen / rules.min_cue_s)
    speed = chars / max(on_screen, FRAME_MS / 1000)
    if speed > rules.max_cps:
        total += _SLOW_COST * (speed - rules.max_cps) / rules.max_cps
    return total


def _wrap(group: Sequence[_Word], rules: SubtitleRules) -> tuple[str, ...] | None:
    """The words on the fewest lines of at most max_line_chars (at most max_lines), as even as
    can be: the longest line as short as possible. None when they do not fit."""
    gaps = [0] + [1 if word.spaced else 0 for word in group[1:]]
    ends = list(itertools.accumulate(w.width + gap for w, gap in zip(group, gaps, strict=True)))

    def width(a: int, b: int) -> int:  # words[a:b] on one line
        return ends[b - 1] - (ends[a - 1] if a else 0) - gaps[a]

    n = len(group)
    limit = rules.max_line_chars
    for count in range(1, min(rules.max_lines, n) + 1):
        # longest[k][b]: the shortest longest line putting words[:b] on k lines; cut: where the
        # last of them starts. A line is never wider than the limit, which bounds the search.
        longest = [[math.inf] * (n + 1) for _ in range(count + 1)]
        cut = [[0] * (n + 1) for _ in range(count + 1)]
        longest[0][0] = 0
        for k in range(1, count + 1):
            for b in range(k, n + 1):
                for a in range(b - 1, k - 2, -1):
                    line = width(a, b)
                    if line > limit:
                        break
                    candidate = max(longest[k - 1][a], line)
                    if candidate < longest[k][b]:
                        longest[k][b], cut[k][b] = candidate, a
        if longest[count][n] <= limit:
            lines: list[str] = []
            b = n
            for k in range(count, 0, -1):
                a = cut[k][b]
                lines.append(_joined(group[a:b]))
                b = a
            return tuple(reversed(lines))
    return None


def _timed(grouped: list[list[_Word]], shown: _Shown) -> list[Cue]:
    """Each group as a cue on screen from its first word to its last, in whole milliseconds,
    stretched into the free time after it for the minimum time and a readable speed, never
    over the next cue, and at least a frame (which moves the next one on, where words share a
    moment)."""
    rules = shown.rules
    result: list[Cue] = []
    previous_end = 0
    for n, group in enumerate(grouped):
        words = shown.words(group)
        lines = _wrap(words, rules) or (_joined(words),)
        start = max(_ms(group[0].start), previous_end)
        chars = _reading_chars(lines)
        wanted = max(
            _ms(group[-1].end),
            start + _ms(rules.min_cue_s),
            start + math.ceil(chars / rules.max_cps * 1000),
        )
        end = min(wanted, start + _ms(rules.max_cue_s))
        if n + 1 < len(grouped):
            end = min(end, _ms(grouped[n + 1][0].start))
        end = max(end, start + FRAME_MS)
        result.append(Cue(start / 1000, end / 1000, lines, group[0].speaker))
        previous_end = end
    return result


def _ms(seconds: float) -> int:
    return max(round(seconds * 1000), 0)


def broken_rules(shown: Sequence[Cue], rules: SubtitleRules) -> list[str]:
    """Every rule a list of cues breaks, said per cue (for tests and checks over real files).
    The minimum time and the reading speed count as broken only where the cue could have
    stayed longer: it ends before both the next cue and its maximum time. Every cue stays at
    least a frame."""
    problems = []
    for n, cue in enumerate(shown):
        where = f"cue {n + 1} ({cue.start:.3f}-{cue.end:.3f} {cue.text!r})"
        if not (math.isfinite(cue.start) and math.isfinite(cue.end)) or cue.start < 0:
            problems.append(f"{where}: times that are not times")
            continue
        if len(cue.lines) > rules.max_lines:
            problems.append(f"{where}: {len(cue.lines)} lines")
        for line in cue.lines:
            if display_width(line) > rules.max_line_chars:
                problems.append(f"{where}: a line {display_width(line)} columns wide")
            if not line.strip() or any(unicodedata.category(c) == "Cc" for c in line):
                problems.append(f"{where}: an empty line or a control character")
        duration = cue.end - cue.start
        if duration + 1e-9 < FRAME_MS / 1000:
            problems.append(f"{where}: on screen for less than a frame")
        if duration > rules.max_cue_s + 1e-9:
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
