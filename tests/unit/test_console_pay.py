"""The console's simulated payments (issue 13, part 8): an invoice in a reply is shown and
remembered per person and handle, `:pay <handle>` sends the pre-checkout and, when the bot
accepts it, a successful first payment of a 30-day subscription — asking with `/subscribe`
first when no invoice is remembered; url buttons show their link. The bot here is a recording
handler (the App-level flow is tests/integration/console/test_console_pay_flow.py)."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Sequence

from adapters.base import Address, Button, Inbound, Message, Reply
from adapters.console import ConsoleAdapter
from bridge.engine.access import InvoicePayload
from bridge.ports import Invoice, PaymentReceived, PreCheckout

PERIOD = 30 * 24 * 3600


class Bot:
    """Answers `/subscribe news` with an invoice, refuses bob's pre-checkouts, records all."""

    def __init__(self) -> None:
        self.events: list[Inbound] = []
        self.payloads: list[str] = []

    async def __call__(self, event: Inbound) -> Sequence[Reply]:
        self.events.append(event)
        if isinstance(event, Message) and event.text == "/subscribe news":
            payload = InvoicePayload(7, 100).encode()
            self.payloads.append(payload)
            invoice = Invoice("Daily News", "30 days of paid posts", payload, 100, PERIOD)
            return [Reply("Subscribe to Daily News:", invoice=invoice)]
        if isinstance(event, Message) and event.text.startswith("/subscribe"):
            return [Reply("There is no channel 'nope'.")]
        if isinstance(event, Message) and event.text == "/info news":
            return [Reply("Daily News", buttons=(Button("Subscribe", "/subscribe news",
                                                        url="https://t.me/bot?start=news"),
                                                 Button("Follow", "/follow news")))]
        if isinstance(event, PreCheckout):
            await event.answer("The price changed." if event.sender.id == "bob" else None)
        return []


async def _run(script: str) -> tuple[Bot, str]:
    bot, out = Bot(), io.StringIO()
    console = ConsoleAdapter(input_stream=io.StringIO(script), output=out)
    await console.start(bot)
    await asyncio.wait_for(console.finished.wait(), 30)
    await console.stop()
    return bot, out.getvalue()


def _of(bot: Bot, kind: type) -> list:
    return [e for e in bot.events if isinstance(e, kind)]


async def test_pay_accepts_the_remembered_invoice_and_pays_it_once() -> None:
    before = time.time()
    bot, out = await _run(":as alice\n/subscribe news\n:pay news\n")
    assert "[invoice: 30 days of Daily News for 100 Stars — type :pay news to pay]" in out
    (check,) = _of(bot, PreCheckout)
    (paid,) = _of(bot, PaymentReceived)
    alice = Address("console", "alice")
    assert (check.sender, check.payload, check.currency, check.total_amount) == (
        alice, bot.payloads[0], "XTR", 100)
    assert (paid.sender, paid.payload, paid.currency, paid.total_amount) == (
        alice, bot.payloads[0], "XTR", 100)
    assert paid.charge_id.startswith("console-") and len(paid.charge_id) > len("console-") + 8
    assert paid.recurring and paid.first_recurring
    assert paid.expires_at is not None and before + PERIOD <= paid.expires_at <= time.time() + PERIOD
    assert f"[paid 100 Stars for news: charge {paid.charge_id}]" in out
    assert [e.text for e in _of(bot, Message)] == ["/subscribe news"]  # it had the invoice
    assert "alice" not in paid.payload


async def test_pay_without_an_invoice_subscribes_first_and_each_charge_is_new() -> None:
    bot, out = await _run(":as alice\n:pay news\n:pay news\n")
    assert [e.text for e in _of(bot, Message)] == ["/subscribe news", "/subscribe news"]
    checks, paid = _of(bot, PreCheckout), _of(bot, PaymentReceived)
    assert [c.payload for c in checks] == bot.payloads == [p.payload for p in paid]
    assert len({p.charge_id for p in paid}) == 2
    assert out.count("type :pay news to pay]") == 2


async def test_a_refused_pre_checkout_pays_nothing_and_says_why() -> None:
    bot, out = await _run(":as bob\n:pay news\n")
    assert len(_of(bot, PreCheckout)) == 1
    assert _of(bot, PaymentReceived) == []
    assert "[payment refused: The price changed.]" in out


async def test_pay_for_a_channel_without_an_invoice_pays_nothing_at_once() -> None:
    started = time.monotonic()
    bot, out = await _run(":as alice\n:pay nope\n:pay\n")
    assert time.monotonic() - started < 5  # the refusal ends the wait, not the timeout
    assert "[no invoice for nope came back: nothing paid]" in out
    assert "usage: :pay HANDLE" in out
    assert _of(bot, PreCheckout) == [] and _of(bot, PaymentReceived) == []


async def test_invoices_are_kept_per_person() -> None:
    bot, _ = await _run(":as alice\n/subscribe news\n:as carol\n:pay news\n")
    # carol had no invoice of her own: she asked for one; alice's stays unpaid
    assert [(e.sender.id, e.text) for e in _of(bot, Message)] == [
        ("alice", "/subscribe news"), ("carol", "/subscribe news")]
    (paid,) = _of(bot, PaymentReceived)
    assert paid.sender.id == "carol" and paid.payload == bot.payloads[1]


async def test_url_buttons_show_their_link() -> None:
    _, out = await _run("/info news\n")
    assert "[Subscribe: https://t.me/bot?start=news]  [Follow: /follow news]" in out
