"""Speaker labels without a model: the embedder's features against librosa's and SciPy's parts,
clustering within a speaker count, turns onto segments and words, rendering with speakers."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from whisper_transcriber.db.transcript import Segment, Transcript, Word
from whisper_transcriber.db.values import MAX_SPEAKERS, JobOptions
from whisper_transcriber.worker.outputs import render
from whisper_transcriber.worker.speakers import embedder
from whisper_transcriber.worker.speakers.assign import speech_of, with_speakers
from whisper_transcriber.worker.speakers.clustering import SpeakerCount, cluster
from whisper_transcriber.worker.speakers.diarizer import (
    Turn,
    _Batches,
    _chunks,
    _region_windows,
    _regions_within,
)

RNG_SEED = 7


def test_features_follow_the_models_recipe_with_librosas_filters_and_scipys_window() -> None:
    import librosa
    import scipy.signal

    samples = np.random.default_rng(RNG_SEED).standard_normal(16_000).astype(np.float32) * 0.1
    bands = librosa.filters.mel(sr=16_000, n_fft=512, n_mels=40)  # Slaney, area-normalised
    assert np.abs(embedder._mel_bands() - bands).max() < 1e-6
    window = np.zeros(512)
    window[56:456] = scipy.signal.get_window("hamming", 400, fftbins=True)  # periodic, centred
    assert np.abs(embedder._window() - window).max() < 1e-6

    features = embedder.log_mel(samples)
    assert features.shape == (1 + (16_000 - 512) // 160, 40)  # no centring: whole frames only
    frame = samples[7 * 160 : 7 * 160 + 512] * window  # frame 7 starts at sample 7 x hop
    power = np.abs(np.fft.rfft(frame)) ** 2
    assert np.allclose(features[7], np.log10(bands @ power + 1e-10), atol=1e-4)


def voices(per_speaker: list[int], spread: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors scattered around one random centre per speaker, and who each belongs to."""
    rng = np.random.default_rng(RNG_SEED)
    centres = rng.standard_normal((len(per_speaker), 256))
    points, owners = [], []
    for speaker, count in enumerate(per_speaker):
        for _ in range(count):
            points.append(
                centres[speaker]
                + spread * np.linalg.norm(centres[speaker]) * rng.standard_normal(256) / 16
            )
            owners.append(speaker)
    prints = np.array(points, np.float32)
    return prints / np.linalg.norm(prints, axis=1, keepdims=True), np.array(owners)


def same_grouping(found: np.ndarray, truth: np.ndarray) -> bool:
    pairs = {(int(a), int(b)) for a, b in zip(found, truth, strict=True)}
    return len(pairs) == len(set(found.tolist())) == len(set(truth.tolist()))


def test_clustering_finds_each_voice() -> None:
    prints, owners = voices([12, 8, 5])
    labels, centres = cluster(prints, SpeakerCount())
    assert same_grouping(labels, owners) and centres.shape == (3, 256)


def test_clustering_keeps_one_voice_one_speaker() -> None:
    prints, _ = voices([30])
    labels, _ = cluster(prints, SpeakerCount())
    assert set(labels.tolist()) == {0}


@pytest.mark.parametrize(
    ("count", "speakers"),
    [
        (SpeakerCount(exact=2), 2),
        (SpeakerCount(minimum=4), 4),
        (SpeakerCount(maximum=2), 2),
        (SpeakerCount(minimum=2, maximum=5), 3),
    ],
)
def test_clustering_keeps_within_the_jobs_count(count: SpeakerCount, speakers: int) -> None:
    prints, _ = voices([12, 8, 5])
    labels, centres = cluster(prints, count)
    assert len(set(labels.tolist())) == speakers == centres.shape[0]


def test_clustering_of_nothing_and_of_one_print() -> None:
    assert cluster(np.zeros((0, 256), np.float32), SpeakerCount())[0].shape == (0,)
    prints, _ = voices([1])
    assert cluster(prints, SpeakerCount(exact=3))[0].tolist() == [0]


def test_a_long_file_is_clustered_on_a_sample_and_every_print_labelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from whisper_transcriber.worker.speakers import clustering

    monkeypatch.setattr(clustering, "MAX_CLUSTERED", 20)
    prints, owners = voices([40, 30, 30])
    labels, _ = cluster(prints, SpeakerCount())
    assert same_grouping(labels, owners)


def test_windows_cover_a_region_side_by_side_and_a_short_one_whole() -> None:
    samples = np.zeros(16_000 * 5, np.float32)
    features, owned = _region_windows(samples, 1600, 1600 + 16_000 * 2)  # 2 s of speech
    assert features.shape[1:] == (80, 40)
    assert owned[0][0] == 1600 and owned[-1][1] == 1600 + 32_000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(owned))  # no gap, no overlap
    short_features, short = _region_windows(samples, 100, 4100)  # 0.25 s, at the very start
    assert short_features.shape == (1, 80, 40) and short == [(100, 4100)]
    tiny = np.zeros(4000, np.float32)  # a whole file shorter than a window
    assert _region_windows(tiny, 0, 4000)[0].shape == (1, 80, 40)
    assert _chunks(0, 1) == [(0,)] and _chunks(3, 4) == [(3, 4), (4, 5), (5, 6)]


def test_speech_is_where_the_words_are_and_each_piece_hears_its_part() -> None:
    words = (word(0.0, 0.5, " One"), word(0.6, 1.0, " two."), word(1.2, 1.5, " Three"))
    transcript = Transcript("en", 1.0, 10.0, (Segment(1, 0.0, 1.5, " One two. Three", words),
                                              Segment(2, 5.0, 6.0, " Four.", (word(5.0, 6.0, " Four."),))))  # fmt: skip
    assert speech_of(transcript) == [(0.0, 1.0), (1.2, 1.5), (5.0, 6.0)]  # 0.1 s joined, 0.2 not
    # A piece of 4 s from 1 s into the file: the stretches inside it, as its own sample indices;
    # what a piece's edge leaves of one (50 ms of the first, none of the last) is not heard.
    piece = _regions_within([(0.0, 1.05), (1.2, 1.5), (5.0, 6.0)], 16000, 4 * 16000)
    assert piece == [(3200, 8000)]


class Session:
    """The embedder's ONNX session as embed() calls it: a window's print is its first number."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def run(self, _outputs: None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        (windows,) = feeds.values()
        self.calls.append(windows.shape[0])
        prints = np.zeros((windows.shape[0], embedder.DIMENSION), np.float32)
        prints[:, 0], prints[:, 1] = windows[:, 0, 0], 1.0
        return [prints]


def fake_embedder() -> tuple[embedder.Embedder, Session]:
    fake = embedder.Embedder.__new__(embedder.Embedder)  # no model: the session stands in
    session = Session()
    fake._session, fake._input = session, "mel_window"
    return fake, session


def numbered(first: int, count: int) -> np.ndarray:
    windows = np.zeros((count, 80, 40), np.float32)
    windows[:, 0, 0] = np.arange(first, first + count)
    return windows


def test_windows_are_embedded_a_batch_at_a_time_across_regions_in_order() -> None:
    fake, session = fake_embedder()
    batches = _Batches(fake)
    sizes = [3, 5, 1, 45, 2]  # regions: most hold a few windows
    for first, size in zip(itertools.accumulate([0, *sizes]), sizes, strict=False):
        batches.add(numbered(first, size))
    prints = batches.prints()
    assert session.calls == [27, 27, 2]  # 54 waiting: in two even calls, not one per region
    numbers = np.rint(prints[:, 0] / prints[:, 1])  # embed() makes prints unit length
    assert numbers.tolist() == list(range(sum(sizes)))


def word(start: float, end: float, text: str) -> Word:
    return Word(start, end, text, 0.9)


TALK = Transcript(
    language="en",
    language_probability=1.0,
    duration=6.0,
    segments=(
        Segment(
            0, 0.0, 3.0, " Hello there. Hi.",
            words=(word(0.0, 0.5, " Hello"), word(0.5, 1.2, " there."), word(2.0, 2.6, " Hi.")),
            tokens=(1, 2, 3), avg_logprob=-0.2,
        ),
        Segment(1, 3.0, 6.0, " How are you?", words=(word(3.1, 3.5, " How"), word(3.5, 3.9, " are"), word(3.9, 5.0, " you?"))),
    ),
)  # fmt: skip
TURNS = [Turn(0.0, 1.4, 0), Turn(1.9, 2.8, 1), Turn(3.0, 5.2, 0)]


def test_segments_split_where_the_speaker_changes_and_keep_their_words() -> None:
    labelled = with_speakers(TALK, TURNS, keep_words=True)
    assert [(s.id, s.start, s.end, s.text, s.speaker) for s in labelled.segments] == [
        (0, 0.0, 1.2, " Hello there.", "Speaker 1"),
        (1, 2.0, 3.0, " Hi.", "Speaker 2"),
        (2, 3.0, 6.0, " How are you?", "Speaker 1"),
    ]
    assert labelled.segments[0].tokens is None  # tokens cannot be divided
    assert labelled.segments[2] == TALK.segments[1].__class__(
        **{**TALK.segments[1].__dict__, "id": 2, "speaker": "Speaker 1", "words": labelled.segments[2].words}
    )  # fmt: skip
    assert {w.speaker for w in labelled.segments[1].words or ()} == {"Speaker 2"}
    assert labelled.speakers == ("Speaker 1", "Speaker 2")
    assert labelled.text == TALK.text  # nothing said is lost or moved


def test_segment_ids_go_on_from_the_first_as_faster_whisper_numbers_them() -> None:
    from_one = TALK.__class__(
        "en", 1.0, 6.0, tuple(s.__class__(**{**s.__dict__, "id": s.id + 1}) for s in TALK.segments)
    )
    assert [s.id for s in with_speakers(from_one, TURNS, keep_words=False).segments] == [1, 2, 3]


def test_without_asked_words_segments_are_split_but_words_dropped() -> None:
    labelled = with_speakers(TALK, TURNS, keep_words=False)
    assert len(labelled.segments) == 3 and all(s.words is None for s in labelled.segments)


def test_no_turns_is_one_speaker_and_words_far_from_turns_take_the_nearest() -> None:
    assert {s.speaker for s in with_speakers(TALK, [], keep_words=False).segments} == {"Speaker 1"}
    far = with_speakers(TALK, [Turn(10.0, 11.0, 0), Turn(12.0, 13.0, 1)], keep_words=False)
    assert {s.speaker for s in far.segments} == {"Speaker 1"}  # the nearest turn's
    plain = Transcript("en", 1.0, 3.0, (Segment(0, 2.0, 3.0, " Bye."),))
    assert (
        with_speakers(plain, [Turn(0.0, 1.0, 0), Turn(2.1, 3.0, 1)], True).segments[0].speaker
        == "Speaker 2"
    )


NAMED = with_speakers(TALK, TURNS, keep_words=True).with_speaker_names({"Speaker 1": "Ada"})


def test_every_format_names_the_speakers() -> None:
    assert render(NAMED, "txt") == "Ada: Hello there.\n\nSpeaker 2: Hi.\n\nAda: How are you?\n"
    assert "00:00:02,000 --> 00:00:03,000\nSpeaker 2: Hi.\n" in render(NAMED, "srt")
    assert "00:00:00.000 --> 00:00:01.200\n<v Ada>Hello there.\n" in render(NAMED, "vtt")
    assert render(NAMED, "tsv").splitlines()[:2] == [
        "start\tend\ttext\tspeaker",
        "0\t1200\tHello there.\tAda",
    ]
    document = json.loads(render(NAMED, "json"))
    assert document["speakers"] == ["Ada", "Speaker 2"]
    assert [s["speaker"] for s in document["segments"]] == ["Ada", "Speaker 2", "Ada"]
    assert {w["speaker"] for w in document["segments"][1]["words"]} == {"Speaker 2"}


def test_a_name_cannot_break_a_cue() -> None:
    hostile = NAMED.with_speaker_names({"Ada": "x>\n-->y<v z>&"})
    assert "<v x --yv z&amp;>Hello there." in render(hostile, "vtt")  # no tag ends early
    assert "x> ->y<v z>&: Hello there." in render(hostile, "srt")
    assert render(hostile, "tsv").splitlines()[1].split("\t")[3] == "x> -->y<v z>&"


def test_without_speakers_every_format_is_as_before() -> None:
    for fmt in ("txt", "srt", "vtt", "tsv", "json"):
        assert render(TALK, fmt) == render(TALK.with_speaker_names({"Speaker 1": "Ada"}), fmt)
    assert "speaker" not in render(TALK, "json") and "speaker" not in render(TALK, "tsv")
    stored = Transcript.from_dict(json.loads(render(NAMED, "json")))
    assert stored.segments == NAMED.segments


def test_speaker_counts_need_diarize_and_agree() -> None:
    assert JobOptions(diarize=True, min_speakers=2, max_speakers=2).max_speakers == 2
    for wrong in (
        {"num_speakers": 2},
        {"diarize": True, "num_speakers": 2, "max_speakers": 3},
        {"diarize": True, "min_speakers": 3, "max_speakers": 2},
        {"diarize": True, "num_speakers": 0},
        {"diarize": True, "max_speakers": MAX_SPEAKERS + 1},
    ):
        with pytest.raises(ValidationError):
            JobOptions(**wrong)


def test_speaker_options_from_settings_inboxes_and_requests(tmp_path: Path) -> None:
    from whisper_transcriber.api.schemas import OptionsIn
    from whisper_transcriber.service.inboxes import _inbox
    from whisper_transcriber.service.settings import InboxSettings, SettingError, load_settings

    with pytest.raises(SettingError, match="need diarize"):
        load_settings(num_speakers=2)
    settings = load_settings(diarize=True, max_speakers=5)
    assert settings.job_options().max_speakers == 5
    # A count given closer to the file replaces the service's counts, all of them.
    inbox = _inbox(InboxSettings(path=tmp_path, num_speakers=3), settings)
    assert (inbox.options.num_speakers, inbox.options.max_speakers) == (3, None)
    quiet = _inbox(InboxSettings(path=tmp_path, diarize=False), load_settings())
    assert not quiet.options.diarize
    # diarize turned off closer to the file takes the service's counts with it.
    off = _inbox(InboxSettings(path=tmp_path, diarize=False), settings).options
    assert (off.diarize, off.max_speakers) == (False, None)
    with pytest.raises(SettingError, match=f"inbox {tmp_path}: .*need diarize"):
        _inbox(InboxSettings(path=tmp_path, diarize=False, num_speakers=2), settings)
    asked = OptionsIn(num_speakers=2).options(settings.job_options())
    assert (asked.diarize, asked.num_speakers, asked.max_speakers) == (True, 2, None)
    plain = OptionsIn(diarize=False).options(settings.job_options())
    assert (plain.diarize, plain.max_speakers) == (False, None)
