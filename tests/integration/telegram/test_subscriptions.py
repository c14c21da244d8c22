"""Telegram Stars subscriptions through the whole App against the local Bot API server (issue 13):
`/subscribe` -> an invoice link button -> the user pays (pre-checkout, successful_payment) ->
access and the paid back catalogue; renewals; a changed price refused at checkout; refunds by
the owner and by Telegram; `/unsubscribe`; `channelbridge payments reconcile`; and nobody's
Telegram id in the database, the invoice payloads or the logs."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy import text as sa_text
from sqlmodel import select

from adapters.telegram.adapter import TelegramAdapter
from bridge import cli, migrate
from bridge.app import App
from bridge.config import load_settings
from bridge.models import Entitlement, LedgerEntry, LedgerKind
from bridge.reconcile import reconcile
from bridge.store import Store
from tests.integration.telegram.test_telegram_app import POLL_TIMEOUT_S, TEST_LIMITS, Bridge, copies
from tests.telegram_api import FakeBotApi, FakeUser

pytestmark = [
    pytest.mark.telegram,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

MONTH = 2592000
SUPPORT = "@news_payments_help"


def _env(api: FakeBotApi, data_dir: Path, operator: FakeUser) -> dict[str, str]:
    return {
        "CHANNELBRIDGE_GENERAL__DATA_DIR": str(data_dir),
        "CHANNELBRIDGE_OPERATORS": json.dumps([{"telegram": operator.id}]),
        "CHANNELBRIDGE_DELIVERY__BACKOFF_BASE_S": "0.2",
        "CHANNELBRIDGE_DELIVERY__BACKOFF_MAX_S": "1",
        "CHANNELBRIDGE_PAYMENTS__ENABLED": "true",
        "CHANNELBRIDGE_PAYMENTS__SUPPORT": SUPPORT,
    }


def _telegram_env(api: FakeBotApi) -> dict[str, str]:
    return {
        "CHANNELBRIDGE_TELEGRAM__ENABLED": "true",
        "CHANNELBRIDGE_TELEGRAM__TOKEN": api.token,
        "CHANNELBRIDGE_TELEGRAM__API_BASE_URL": api.base_url,
        "CHANNELBRIDGE_TELEGRAM__FILE_BASE_URL": api.file_base_url,
    }


@pytest.fixture
async def bridge(api: FakeBotApi, tmp_path: Path, store_url: str) -> AsyncIterator[Bridge]:
    """A started App with payments on, a channel `news` selling 30 days for 50 Stars; on
    SQLite and on PostgreSQL."""
    operator = api.add_user("Olga")
    env = _env(api, tmp_path / "data", operator) | {"CHANNELBRIDGE_DATABASE__URL": store_url}
    settings = load_settings(None, env=env)
    if store_url.startswith("postgresql"):  # PostgreSQL is migrated once by the operator
        store = Store(store_url)
        migrate.upgrade(store.engine)
        store.dispose()
    adapter = TelegramAdapter(
        api.token,
        api_base_url=api.base_url,
        file_base_url=api.file_base_url,
        poll_timeout=POLL_TIMEOUT_S,
        limits=TEST_LIMITS,
    )
    app = App(settings, adapters=[adapter])
    await app.start()
    b = Bridge(app, api, operator)
    await b.ask(operator, "/newchannel news Daily News", "created")
    await b.ask(operator, "/price news 50", "now sells")
    try:
        yield b
    finally:
        await app.stop()


@pytest.fixture(autouse=True)
def logs_name_nobody(api: FakeBotApi, caplog: pytest.LogCaptureFixture) -> Callable[[], None]:
    """Every test here also proves that no log line at DEBUG carries a user id."""
    caplog.set_level(logging.DEBUG)

    def check() -> None:
        ids = [str(user_id) for user_id in api.users]
        for record in caplog.records:
            line = record.getMessage() + (record.exc_text or "")
            assert not any(re.search(rf"(?<!\d){re.escape(i)}(?!\d)", line) for i in ids), (
                f"a {record.levelname} line from {record.name} names someone"
            )

    return check


async def invoice_link(b: Bridge, user: FakeUser) -> str:
    """`user` sends /subscribe news; returns the link of the pay button under the answer."""
    before = len(b.api.messages(user.id))
    await b.ask(user, "/subscribe news", "Subscribe to Daily News")
    for msg in b.api.messages(user.id)[before:]:
        for row in (msg.reply_markup or {}).get("inline_keyboard", []):
            for button in row:
                if "url" in button:
                    assert "callback_data" not in button
                    return str(button["url"])
    raise AssertionError("no pay button")


async def subscribe(b: Bridge, user: FakeUser) -> str:
    """`user` subscribes and pays; returns the charge id once the thank-you arrived."""
    before = len(b.api.messages(user.id))
    outcome = await b.api.payments.user_pays(user.id, await invoice_link(b, user))
    assert outcome.status == "paid" and outcome.charge is not None
    await b.answer(user, before, "Thank you!")
    return outcome.charge.charge_id


def ledger(b: Bridge) -> list[LedgerEntry]:
    with b.app.store.unit_of_work() as s:
        return list(s.exec(select(LedgerEntry).order_by(LedgerEntry.id)))  # type: ignore[arg-type]


def paid_until(b: Bridge) -> list[float]:
    with b.app.store.unit_of_work() as s:
        return [e.paid_until for e in s.exec(select(Entitlement))]


async def test_a_follower_subscribes_pays_and_receives_the_paid_posts_of_the_last_30_days(
    bridge: Bridge, logs_name_nobody: Callable[[], None]
) -> None:
    b = bridge
    await b.post(b.operator, "/post news --paid Only for subscribers")
    ann = b.api.add_user("Ann")
    link = await invoice_link(b, ann)
    invoice = b.api.payments.invoice(link)
    assert (invoice.currency, invoice.amount, invoice.subscription_period) == ("XTR", 50, MONTH)
    assert invoice.title == "Daily News" and "30 days" in invoice.description
    outcome = await b.api.payments.user_pays(ann.id, link)
    assert outcome.status == "paid" and outcome.charge is not None
    assert b.api.payments.checkout_answers[outcome.query_id] == {
        "pre_checkout_query_id": outcome.query_id,
        "ok": True,
    }
    thanks = await b.answer(ann, 0, "Thank you!")
    assert "renews automatically" in thanks
    rows = ledger(b)
    assert [(r.kind, r.amount, r.telegram_payment_charge_id) for r in rows] == [
        (LedgerKind.CHARGE.value, 50, outcome.charge.charge_id)
    ]
    assert str(ann.id) not in repr(rows[0].model_dump())
    assert paid_until(b) == [pytest.approx(outcome.charge.expiration_date)]
    await b.app.sync()
    assert any("Only for subscribers" in (m.text or "") for m in copies(b.api, ann.id))

    # then: a new paid post reaches the subscriber; a free follower gets only the teaser
    bea = b.api.add_user("Bea")
    await b.ask(bea, "/follow news", "You now follow")
    await b.post(b.operator, "/post news --paid The second one")
    await b.app.sync()
    assert any("The second one" in (m.text or "") for m in copies(b.api, ann.id))
    bea_sees = [m.text or "" for m in copies(b.api, bea.id)]
    assert not any("The second one" in t or "Only for subscribers" in t for t in bea_sees), bea_sees
    assert len([t for t in bea_sees if "🔒 A post for subscribers" in t]) == 1, bea_sees
    logs_name_nobody()


async def test_an_invoice_link_that_fails_once_is_made_again_by_the_reply_lane(bridge: Bridge) -> None:
    b = bridge
    b.api.fail("createInvoiceLink", status=429, retry_after=1)
    ann = b.api.add_user("Ann")
    link = await invoice_link(b, ann)
    assert len(b.api.calls_to("createInvoiceLink")) == 2
    assert b.api.payments.invoice(link).amount == 50


async def test_a_pre_checkout_answer_that_meets_a_429_is_retried_in_time(bridge: Bridge) -> None:
    b = bridge
    ann = b.api.add_user("Ann")
    link = await invoice_link(b, ann)
    b.api.fail("answerPreCheckoutQuery", status=429, retry_after=2)
    b.api.fail("answerPreCheckoutQuery", status=502)  # then a bad gateway, once
    outcome = await b.api.payments.user_pays(ann.id, link)
    assert outcome.status == "paid", outcome
    assert len(b.api.calls_to("answerPreCheckoutQuery")) == 3
    await b.answer(ann, 0, "Thank you!")
    assert [r.kind for r in ledger(b)] == [LedgerKind.CHARGE.value]


async def test_a_pre_checkout_that_cannot_be_answered_in_time_charges_nothing(
    bridge: Bridge, caplog: pytest.LogCaptureFixture
) -> None:
    b = bridge
    ann = b.api.add_user("Ann")
    link = await invoice_link(b, ann)
    b.api.fail("answerPreCheckoutQuery", status=429, retry_after=30)
    with caplog.at_level(logging.WARNING):
        outcome = await b.api.payments.user_pays(ann.id, link, timeout=3)  # Telegram: 10
        async with asyncio.timeout(5):
            while "answering a pre-checkout failed" not in caplog.text:
                await asyncio.sleep(0.05)
    assert outcome.status == "timeout"
    assert len(b.api.calls_to("answerPreCheckoutQuery")) == 1  # no answer sent into the penalty
    assert ledger(b) == [] and paid_until(b) == [] and b.api.payments.charges == {}


async def test_a_renewal_extends_access(bridge: Bridge) -> None:
    b = bridge
    ann = b.api.add_user("Ann")
    charge_id = await subscribe(b, ann)
    before = len(b.api.messages(ann.id))
    renewal = b.api.payments.renew(charge_id)
    assert "access until" in await b.answer(ann, before, "renewed")
    assert [r.kind for r in ledger(b)] == [LedgerKind.CHARGE.value, LedgerKind.RENEWAL.value]
    assert ledger(b)[1].telegram_payment_charge_id == renewal.charge_id
    assert paid_until(b) == [pytest.approx(renewal.expiration_date)]


async def test_a_pre_checkout_is_refused_when_the_price_changed(bridge: Bridge) -> None:
    b = bridge
    ann = b.api.add_user("Ann")
    link = await invoice_link(b, ann)
    await b.ask(b.operator, "/price news 70", "now sells")
    outcome = await b.api.payments.user_pays(ann.id, link)
    assert outcome.status == "refused"
    assert outcome.error_message == "The price of Daily News changed to 70 Stars; send /subscribe news again."
    assert ledger(b) == [] and paid_until(b) == []
    assert b.api.payments.charges == {}


async def test_refund_by_the_owner_ends_access_and_nobody_else_may_refund(bridge: Bridge) -> None:
    b = bridge
    ann = b.api.add_user("Ann")
    charge_id = await subscribe(b, ann)
    stranger = b.api.add_user("Sam")
    await b.ask(stranger, f"/refund news {charge_id}", "Only the owner")
    invite = await b.ask(b.operator, "/invite-admin news", "One-time admin code")
    code = re.search(r"/accept ([0-9a-f]+)", invite)
    assert code is not None
    editor = b.api.add_user("Eddie")
    await b.ask(editor, f"/accept {code[1]}", "You are now admin")
    await b.ask(editor, f"/refund news {charge_id}", "Only the owner")
    assert b.api.calls_to("refundStarPayment") == [] and len(ledger(b)) == 1 and len(paid_until(b)) == 1

    before = len(b.api.messages(ann.id))
    answer = await b.ask(b.operator, f"/refund news {charge_id}", "Refunded 50 Stars")
    assert "Subscribers now: 0" in answer and str(ann.id) not in answer
    assert b.api.payments.charges[charge_id].refunded
    assert [r.kind for r in ledger(b)] == [LedgerKind.CHARGE.value, LedgerKind.REFUND.value]
    assert paid_until(b) == []
    await b.answer(ann, before, "was refunded")
    await b.ask(b.operator, f"/refund news {charge_id}", "refunded already")
    assert len(b.api.calls_to("refundStarPayment")) == 1


async def test_a_refund_from_telegram_ends_access_and_the_payer_is_told_once(bridge: Bridge) -> None:
    b = bridge
    ann = b.api.add_user("Ann")
    charge_id = await subscribe(b, ann)
    before = len(b.api.messages(ann.id))
    b.api.payments.refund_by_telegram(charge_id)
    await b.answer(ann, before, "was refunded")
    assert [r.kind for r in ledger(b)] == [LedgerKind.CHARGE.value, LedgerKind.REFUND.value]
    assert paid_until(b) == []
    await b.app.sync()
    told = [m for m in b.api.messages(ann.id)[before:] if m.from_bot and "was refunded" in (m.text or "")]
    assert len(told) == 1


async def test_unsubscribe_cancels_renewals_and_access_lasts_until_its_end(bridge: Bridge) -> None:
    b = bridge
    ann = b.api.add_user("Ann")
    await b.ask(ann, "/unsubscribe news", "no subscription")
    charge_id = await subscribe(b, ann)
    answer = await b.ask(ann, "/unsubscribe news", "will not renew")
    assert "until" in answer
    [call] = b.api.calls_to("editUserStarSubscription")
    assert call.params["is_canceled"] is True and call.params["telegram_payment_charge_id"] == charge_id
    assert b.api.payments.charges[charge_id].canceled
    with pytest.raises(ValueError, match="cancelled"):
        b.api.payments.renew(charge_id)
    assert len(paid_until(b)) == 1


async def test_reconcile_finds_a_planted_difference_and_none_when_they_agree(
    bridge: Bridge, api: FakeBotApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = bridge
    for name in ("Ann", "Bea"):
        await subscribe(b, b.api.add_user(name))
    env = {
        **_env(api, tmp_path / "data", b.operator),
        **_telegram_env(api),
        "CHANNELBRIDGE_DATABASE__URL": b.app.settings.database_url,
    }
    settings = load_settings(None, env=env)
    lines: list[str] = []
    assert await reconcile(settings, lines.append) == 0, lines
    assert lines[-1].endswith("2 transactions, 2 ledger rows; 0 missing, 0 extra, 0 amount")

    first = ledger(b)[0].telegram_payment_charge_id
    assert first is not None
    api.payments.plant_difference("amount", charge_id=first, amount=49)
    stranger = api.add_user("Zed")
    api.payments.plant_difference("extra", amount=7, user_id=stranger.id)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    printed = await asyncio.to_thread(_run_cli)
    code, out = printed
    assert code == 1, out
    assert re.search(rf"^amount\s+payment\s+{first}\s+news\s+platform 49 Stars, ledger 50 Stars", out, re.M)
    assert re.search(r"^missing\s+payment\s+planted\d+\s+\?\s+platform 7 Stars, ledger -", out, re.M)
    assert "1 missing, 0 extra, 1 amount" in out
    assert not any(str(user_id) in out for user_id in api.users)


def _run_cli() -> tuple[int, str]:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = cli.main(["payments", "reconcile"])
    return code, buffer.getvalue()


async def test_no_telegram_id_in_any_table_invoice_payload_or_log(
    bridge: Bridge, logs_name_nobody: Callable[[], None], tmp_path: Path
) -> None:
    b = bridge
    ann = b.api.add_user("Ann")
    charge_id = await subscribe(b, ann)
    b.api.payments.renew(charge_id)
    await b.ask(ann, "/unsubscribe news", "will not renew")
    await b.ask(b.operator, f"/refund news {charge_id}", "Refunded")
    await b.app.sync()
    ids = {str(u) for u in b.api.users}
    engine = b.app.store.engine
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(sa_text(f'SELECT * FROM "{table}"')):
                text = " ".join(str(v) for v in row)
                assert not any(re.search(rf"(?<!\d){i}(?!\d)", text) for i in ids), f"an id in table {table}"
    for invoice in b.api.payments.invoices.values():
        assert not any(i in invoice.payload for i in ids)
    logs_name_nobody()


