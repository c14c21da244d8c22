"""The words a copy carries around a post (the earlier-post mark, the follow link, a deleted
copy's notice) are in the operator's language (`general.language`)."""

from __future__ import annotations

from adapters.matrix.render import header_text
from adapters.telegram.render import deleted_notice
from bridge.i18n import speaking
from bridge.ports import Content, PostKind


def _copy() -> Content:
    return Content(
        post_id=7,
        kind=PostKind.TEXT,
        channel_handle="news",
        channel_name="Daily News",
        text="Hello everyone",
        earlier=True,
        follow_url="https://matrix.to/#/@bot:example.org",
    )


def test_a_copys_words_are_in_french_when_the_operator_speaks_french() -> None:
    with speaking("fr"):
        plain, rich = header_text(_copy())
    assert plain.startswith("Daily News (#7, publication antérieure) · Suivre : envoyez /follow news à ")
    assert "<code>/follow news</code>" in rich


def test_a_copys_words_are_english_by_default() -> None:
    plain, _rich = header_text(_copy())
    assert plain.startswith("Daily News (#7, earlier post) · Follow: send /follow news to https://matrix.to")


def test_a_deleted_copy_says_so_in_the_operators_language() -> None:
    with speaking("fr"):
        call = deleted_notice("123", 456, caption=False)
    assert "Cette publication a été supprimée par le canal." in str(call.params)
