"""Media servers' notifications read as each server sends them, and their paths made ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.fake_media_server import emby_notification, jellyfin_notification, plex_payload
from whisper_transcriber.service.media_servers.hook import mapped
from whisper_transcriber.service.media_servers.notices import NoticeError, notice_of


def test_jellyfin_item_added_names_the_file_and_its_subtitles() -> None:
    body = jellyfin_notification("ItemAdded", "abc", "/data/movies/F.mkv", ("eng", "ger"))
    notice = notice_of("jellyfin", body)
    assert (notice.event, notice.item_id, notice.path) == ("added", "abc", "/data/movies/F.mkv")
    assert notice.subtitle_languages == ("eng", "ger") and notice.playable


def test_jellyfin_without_a_path_or_subtitles_says_so() -> None:
    body = jellyfin_notification("PlaybackStart", "abc", None)
    notice = notice_of("jellyfin", body)
    assert notice.event == "playback" and notice.path is None
    assert notice.subtitle_languages == ()  # its streams are listed: none is a subtitle
    other = notice_of("jellyfin", {"NotificationType": "UserCreated"})
    assert other.event == "other"


def test_plex_names_an_item_and_its_section_never_a_file() -> None:
    notice = notice_of("plex", plex_payload("library.new", "4711", section=3))
    assert (notice.event, notice.item_id) == ("added", "4711")
    assert notice.path is None and notice.subtitle_languages is None
    assert notice_of("plex", plex_payload("media.play", "1")).event == "playback"
    assert notice_of("plex", {"event": "media.rate"}).event == "other"


def test_emby_names_the_file_not_its_streams() -> None:
    notice = notice_of("emby", emby_notification("playback.start", "9", "/m/F.mkv"))
    assert (notice.event, notice.path) == ("playback", "/m/F.mkv")
    assert notice.subtitle_languages is None  # to be asked of the server
    assert notice_of("emby", {"Event": "system.notificationtest"}).event == "other"


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("jellyfin", {"NotificationType": "ItemAdded"}),
        ("jellyfin", {"NotificationType": "ItemAdded", "ItemId": {"x": 1}}),
        ("plex", {"event": "library.new"}),
        ("emby", {"Event": "library.new", "Item": []}),
    ],
)
def test_a_notification_without_its_item_is_refused(kind: str, body: dict[str, object]) -> None:
    with pytest.raises(NoticeError):
        notice_of(kind, body)  # type: ignore[arg-type]


def test_a_series_has_no_file_of_its_own() -> None:
    body = jellyfin_notification("ItemAdded", "abc", "/data/tv/Show") | {"ItemType": "Series"}
    assert not notice_of("jellyfin", body).playable


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        ("/data/movies/F (2020)/F.mkv", "/srv/movies/F (2020)/F.mkv"),
        ("/data/movies/tv/x.mkv", "/srv/tv/x.mkv"),  # the longest prefix wins
        ("/data/movies", "/srv/movies"),
        ("/data/movies/a/../b.mkv", "/srv/movies/b.mkv"),  # dots resolved as the server would
        ("/data/moviesX/F.mkv", None),  # whole folder names only
        ("/data/movies/../../etc/passwd", None),
        ("/elsewhere/F.mkv", None),
        ("D:\\Media\\Films\\F.mkv", "/srv/win/Films/F.mkv"),
        ("d:\\media\\Films\\F.mkv", "/srv/win/Films/F.mkv"),  # Windows paths: any case
        ("D:\\Media\\..\\secret.mkv", None),
        ("/data/movies/AC\\DC Live.mkv", "/srv/movies/AC\\DC Live.mkv"),  # a POSIX name
        ("/data/movies/x\\..\\Other.mkv", "/srv/movies/x\\..\\Other.mkv"),
        ("//data/movies/F.mkv", "/srv/movies/F.mkv"),
    ],
)
def test_paths_are_mapped_by_whole_prefixes(theirs: str, ours: str | None) -> None:
    path_map = {
        "/data/movies": "/srv/movies",
        "/data/movies/tv": "/srv/tv",
        "D:\\Media": "/srv/win",
    }
    assert mapped(path_map, theirs) == (Path(ours) if ours else None)


def test_without_a_map_a_path_is_taken_as_it_is_dots_resolved() -> None:
    assert mapped({}, "/srv/a/../b.mkv") == Path("/srv/b.mkv")
    assert mapped({}, "relative/b.mkv") is None


@pytest.mark.parametrize("token", ["", "short", "x" * 15, "ü" * 20])
def test_a_token_that_could_be_guessed_is_refused(token: str) -> None:
    from pydantic import ValidationError

    from whisper_transcriber.service.settings import MediaServerSetting

    with pytest.raises(ValidationError, match="token"):
        MediaServerSetting(kind="plex", url="http://plex:32400", token=token)  # type: ignore[arg-type]


@pytest.mark.parametrize("item_id", ["..", "a/b", "x\n2099 ERROR", "1?x=1", "a" * 65])
def test_an_item_id_is_an_id_and_nothing_else(item_id: str) -> None:
    with pytest.raises(NoticeError, match="not an item id"):
        notice_of("jellyfin", jellyfin_notification("ItemAdded", item_id, "/a.mkv"))


def test_a_subtitle_without_a_language_is_still_a_subtitle() -> None:
    body = jellyfin_notification("PlaybackStart", "abc", "/a.mkv", ("eng",))
    body |= {"Subtitle_1_Type": "Subtitle", "Subtitle_1_Language": None}
    assert notice_of("jellyfin", body).subtitle_languages == ("eng", "")
