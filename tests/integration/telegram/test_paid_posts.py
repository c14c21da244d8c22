"""Paid posts through the whole App against the local Bot API server (issue 13, parts 1, 3, 8):
a free follower gets only the teaser (with its Subscribe button), a subscriber the post, a
mirror nothing; edits and deletes reach only the sent copies; a pay-per-post photo goes out with
sendPaidMedia and its purchase shows in /stats; an ended access gives a teaser and one notice;
a paid poll's /results and /vote are refused to a free follower."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.base import Address
from adapters.telegram.adapter import ALLOWED_UPDATES, TelegramAdapter
from bridge import migrate
from bridge.app import App
from bridge.config import load_settings
from bridge.ports import PaidMediaPurchased
from bridge.store import Store
from tests.integration.telegram.test_telegram_app import (
    CHANNEL,
    PNG,
    POLL_TIMEOUT_S,
    TEST_LIMITS,
    Bridge,
    adapter_logs_name_nobody,  # noqa: F401 - autouse: no log line here names anyone
    copies,
)
from tests.telegram_api import FakeBotApi, FakeUser

pytestmark = [
    pytest.mark.telegram,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

DAY = 24 * 3600.0
TEASER = "🔒 A post for subscribers. Subscribe: 30 days for 50 Stars."

Start = Callable[..., Awaitable[Bridge]]


@pytest.fixture
async def start_paid(api: FakeBotApi, tmp_path: Path, store_url: str) -> AsyncIterator[Start]:
    """An App with payments on (no expiry grace), the channel `news` selling 50 Stars; on
    SQLite and on PostgreSQL."""
    apps: list[App] = []
    if store_url.startswith("postgresql"):  # PostgreSQL is migrated once by the operator
        store = Store(store_url)
        migrate.upgrade(store.engine)
        store.dispose()

    async def make() -> Bridge:
        operator = api.add_user("Olga")
        settings = load_settings(
            None,
            env={
                "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / "data"),
                "CHANNELBRIDGE_DATABASE__URL": store_url,
                "CHANNELBRIDGE_OPERATORS": json.dumps([{"telegram": operator.id}]),
                "CHANNELBRIDGE_PAYMENTS__ENABLED": "true",
                "CHANNELBRIDGE_PAYMENTS__SUPPORT": "@news_help",
                "CHANNELBRIDGE_PAYMENTS__EXPIRY_NOTICE_GRACE_S": "0",
            },
        )
        adapter = TelegramAdapter(
            api.token,
            api_base_url=api.base_url,
            file_base_url=api.file_base_url,
            poll_timeout=POLL_TIMEOUT_S,
            limits=TEST_LIMITS,
        )
        app = App(settings, adapters=[adapter])
        await app.start()
        apps.append(app)
        bridge = Bridge(app, api, operator)
        await bridge.ask(operator, f"/newchannel news {CHANNEL}", "created")
        await bridge.ask(operator, "/price news 50", "now sells")
        return bridge

    yield make
    for app in apps:
        await app.stop()


def _grant(bridge: Bridge, user: FakeUser, until: float) -> None:
    """Paid access for a follower, as a payment would grant it."""
    app = bridge.app
    with app.store.unit_of_work() as s:
        index = app.sealer.address_index(Address("telegram", str(user.id)))
        follower = app.store.followers.by_index(s, index)
        assert follower is not None and follower.id is not None
        app.store.payments.grant(s, follower.id, 1, until)


def _adapter_reports_purchases(bridge: Bridge) -> bool:
    """Whether the Telegram adapter asks for and normalizes `purchased_paid_media` updates."""
    return "purchased_paid_media" in ALLOWED_UPDATES


def _shown(api: FakeBotApi, user: FakeUser) -> list[str]:
    """The posts and teasers in a follower's chat, as they read now."""
    return [msg.text or msg.caption or "" for msg in copies(api, user.id)]


async def _paid_post(bridge: Bridge, text: str) -> None:
    await bridge.ask(bridge.operator, text, "on its way")
    await bridge.app.sync()


async def test_a_free_follower_gets_the_teaser_a_subscriber_the_post_and_a_mirror_nothing(
    start_paid: Start, api: FakeBotApi
) -> None:
    bridge = await start_paid()
    group = api.add_group("Daily News mirror")
    bridge.app.engine.ensure_channel("news", CHANNEL, "", True, [("telegram", str(group.id))])
    free, member = await bridge.follower("Ann"), await bridge.follower("Ben")
    _grant(bridge, member, time.time() + 30 * DAY)

    await _paid_post(bridge, "/post news --paid Members only")
    assert _shown(api, member) == [f"{CHANNEL} (#1)\nMembers only"]
    assert _shown(api, free) == [f"{CHANNEL} (#1)\n{TEASER}"]
    teaser = copies(api, free.id)[0]
    button = {"text": "Subscribe", "callback_data": "/subscribe news"}
    assert teaser.reply_markup == {"inline_keyboard": [[button]]}
    assert copies(api, group.id) == []

    # an edit and a delete reach the sent copies only: the teaser stays as it was
    await bridge.ask(bridge.operator, "/edit 1 Members only, edited", "1 delivered copy will be updated")
    await bridge.app.sync()
    assert _shown(api, member) == [f"{CHANNEL} (#1)\nMembers only, edited"]
    assert copies(api, free.id)[0].edit_date is None
    await bridge.ask(bridge.operator, "/delete 1", "1 delivered copy will be removed")
    await bridge.app.sync()
    assert _shown(api, member) == [] and _shown(api, free) == [f"{CHANNEL} (#1)\n{TEASER}"]

    # with the teaser off a free follower hears nothing of a paid post
    await bridge.ask(bridge.operator, "/teaser news off", "no longer hear")
    await _paid_post(bridge, "/post news --paid Quiet")
    assert _shown(api, free) == [f"{CHANNEL} (#1)\n{TEASER}"]
    assert _shown(api, member) == [f"{CHANNEL} (#2)\nQuiet"]
    assert copies(api, group.id) == []


async def test_pay_per_post_goes_out_as_paid_media_and_a_purchase_shows_in_stats(
    start_paid: Start, api: FakeBotApi
) -> None:
    bridge = await start_paid()
    ann, ben = await bridge.follower("Ann"), await bridge.follower("Ben")
    photo = api.user_sends_photo(bridge.operator.id, PNG, caption="/post news --stars 5 The view")
    await bridge.answer(bridge.operator, photo.message_id, "as pay-per-post (5 Stars)")
    await bridge.app.sync()

    assert len(api.calls_to("sendPaidMedia")) == 2  # copyMessage cannot copy paid media: each copy is sent
    for user in (ann, ben):
        (copy,) = copies(api, user.id)
        assert copy.kind == "paid_media" and copy.caption == f"{CHANNEL} (#1)\nThe view"
        assert copy.extra["paid_media"]["star_count"] == 5
    assert api.calls_to("sendPhoto") == []  # nobody gets the photo for free

    payloads = {call.params.get("payload") for call in api.calls_to("sendPaidMedia")}
    assert payloads == {"cbp.1"}  # the post, never a person
    api.payments.purchase_paid_media(ann.id, ann.id, copies(api, ann.id)[0].message_id)
    if not _adapter_reports_purchases(bridge):
        # the adapter's inbound side of payments is another part of issue 13: until it turns
        # `purchased_paid_media` into the neutral event, hand the App the event it will produce
        await bridge.app.handle(PaidMediaPurchased(Address("telegram", str(ann.id)), "cbp.1"))
    stats = ""
    deadline = time.monotonic() + 10
    while "1 purchase at 5 Stars" not in stats and time.monotonic() < deadline:
        stats = await bridge.ask(bridge.operator, "/stats news", "Stats for")
    assert "1 purchase at 5 Stars" in stats

    # the caption of a paid-media copy can be edited (editMessageCaption)
    await bridge.ask(bridge.operator, "/edit 1 The view, edited", "2 delivered copies will be updated")
    await bridge.app.sync()
    assert [msg.caption for msg in copies(api, ann.id)] == [f"{CHANNEL} (#1)\nThe view, edited"]


async def test_an_ended_access_gives_a_teaser_and_one_notice_even_swept_twice(
    start_paid: Start, api: FakeBotApi
) -> None:
    bridge = await start_paid()
    ann = await bridge.follower("Ann")
    _grant(bridge, ann, time.time() + 30 * DAY)
    await _paid_post(bridge, "/post news --paid While paid")
    assert _shown(api, ann) == [f"{CHANNEL} (#1)\nWhile paid"]

    with bridge.app.store.unit_of_work() as s:  # the period ran out without a renewal
        s.connection().execute(text("UPDATE entitlement SET paid_until = :t"), {"t": time.time() - 1})
    assert await bridge.app.engine.notice_expired_access() == 1
    assert await bridge.app.engine.notice_expired_access() == 0
    await bridge.app.sync()
    notices = [m.text for m in api.bot_messages(ann.id) if "paid posts ended" in (m.text or "")]
    assert notices == [f"Your access to {CHANNEL}'s paid posts ended. /subscribe news renews it."]

    await _paid_post(bridge, "/post news --paid After the end")
    assert _shown(api, ann) == [f"{CHANNEL} (#1)\nWhile paid", f"{CHANNEL} (#2)\n{TEASER}"]

    # a paid poll: its results and votes are for subscribers only
    await _paid_post(bridge, '/poll news "Next?" "A" "B" --paid')
    await bridge.ask(ann, "/results 3", "There is no poll #3 in a channel you follow.")
    await bridge.ask(ann, "/vote 3 1", "There is no open poll #3 in a channel you follow.")
    assert "B — 0" in await bridge.ask(bridge.operator, "/results 3", "Poll #3")
