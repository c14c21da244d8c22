"""Issue 15 parts 2, 3 and 6 through the whole App on the local Bot API server: a new follower
gets the last 3 posts in order after the welcome (an open poll votable), a re-follow nothing
twice, history 0 nothing; every copy's header links to t.me/<bot>?start=<handle> (mirror
copies too) and a follow through it is counted in /stats; `/stats <handle> chart` arrives as a
photo that decodes."""

from __future__ import annotations

import io

import pytest
from matplotlib import image as mpimg

from bridge.engine.chart import SIZE_PX
from tests.integration.telegram import test_telegram_app as base
from tests.integration.telegram.test_telegram_app import CHANNEL, Start, copies
from tests.telegram_api import FakeBotApi

#: the App fixture and the no-identity-in-logs check of the whole-App tests
start_bridge = base.start_bridge
adapter_logs_name_nobody = base.adapter_logs_name_nobody

pytestmark = [
    pytest.mark.telegram,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

LINK = 'href="https://t.me/channelbridge_test_bot?start=news"'


async def test_a_new_follower_gets_the_last_three_posts_after_the_welcome_with_the_follow_link(
    start_bridge: Start, api: FakeBotApi
) -> None:
    bridge = await start_bridge()
    op = bridge.operator
    mirror = api.add_group("Mirror")
    await bridge.ask(op, f"/mirror news telegram:{mirror.id}", "")
    for text in ("one", "two", "three"):
        await bridge.post(op, f"/post news {text}")
    await bridge.ask(op, '/poll news "Lunch?" "Pizza" "Soup"', "is on its way")
    await bridge.app.sync()

    ann = await bridge.follower("Ann")  # /start news: the channel's link
    await bridge.app.sync()
    got = copies(api, ann.id)
    assert [m.text or (m.poll.question if m.poll else "") for m in got] == [
        f"{CHANNEL} (#2, earlier post)\ntwo",
        f"{CHANNEL} (#3, earlier post)\nthree",
        f"{CHANNEL} (#4, earlier post): Lunch?",
    ]
    messages = api.bot_messages(ann.id)
    welcome = next(i for i, m in enumerate(messages) if "You now follow" in (m.text or ""))
    assert welcome < messages.index(got[0])  # after the welcome
    assert all(LINK in (m.source or "") for m in got if m.kind == "text")
    poll = got[2]
    assert poll.reply_markup is not None and "start=news" in str(poll.reply_markup)
    assert poll.poll is not None and not poll.poll.is_closed
    api.answer_poll(ann.id, poll.poll.id, [1])  # still votable: counted across copies
    results = await bridge.ask(ann, "/results 4", "Poll #4")
    assert "1 voter" in results

    # mirror copies carry the link too
    assert all(LINK in (m.source or "") for m in api.bot_messages(mirror.id) if m.kind == "text")

    # a re-follow gets nothing twice; a new post reaches them once, not as earlier
    await bridge.ask(ann, "/unfollow news", "no longer follow")
    await bridge.ask(ann, "/follow news", "You now follow")
    await bridge.post(op, "/post news five")
    await bridge.app.sync()
    texts = [m.text for m in copies(api, ann.id) if m.kind == "text"]
    assert texts.count(f"{CHANNEL} (#2, earlier post)\ntwo") == 1 and texts[-1] == f"{CHANNEL} (#5)\nfive"

    # /history 0: the next follower gets nothing earlier
    await bridge.ask(op, "/history news 0", "no earlier posts")
    bob = await bridge.follower("Bob")
    await bridge.app.sync()
    assert copies(api, bob.id) == []

    stats = await bridge.ask(op, "/stats news", "Stats for")
    assert "Follows through the channel's link: 2" in stats  # Ann and Bob came by /start news


async def test_stats_chart_arrives_as_a_photo_that_decodes(start_bridge: Start, api: FakeBotApi) -> None:
    bridge = await start_bridge()
    op = bridge.operator
    for name in ("Ann", "Bob"):
        await bridge.follower(name)
    for text in ("one", "two"):
        await bridge.post(op, f"/post news {text}")
    before = len(api.bot_messages(op.id))
    api.user_sends_text(op.id, "/stats news chart")

    def photo() -> object:
        return next((m for m in api.bot_messages(op.id)[before:] if m.kind == "photo"), None)

    msg = await api.wait_for(photo, timeout=20, what="the chart photo")
    assert msg is not None and msg.file is not None
    assert msg.caption and "followers over time" in msg.caption
    pixels = mpimg.imread(io.BytesIO(msg.file.data), format="png")
    assert pixels.shape[:2] == (SIZE_PX[1], SIZE_PX[0])
    assert pixels.std() > 0.05  # not a blank canvas
    refused = await bridge.ask(api.add_user("Eve"), "/stats news chart", "Only admins")
    assert "Only admins" in refused
