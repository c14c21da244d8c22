"""The engine's rules: authorization, refusals that change nothing, admin lifecycle."""

from __future__ import annotations

from sqlmodel import func, select

from bridge.models import AuditEntry, Channel, ChannelAdmin, Post, Subscription
from tests.support import OPERATOR, Harness, person


def _count(h: Harness, model: type) -> int:
    with h.store.session() as s:
        return int(s.exec(select(func.count()).select_from(model)).one())


def _snapshot(h: Harness) -> tuple[int, ...]:
    return tuple(_count(h, m) for m in (Channel, ChannelAdmin, Post, Subscription, AuditEntry))


async def test_operator_creates_channel_and_becomes_owner(harness: Harness) -> None:
    reply = await harness.say(OPERATOR, "/newchannel news Daily News")
    assert "created" in reply
    assert "#1 owner" in await harness.say(OPERATOR, "/admins news")


async def test_non_operator_cannot_create_channel(harness: Harness) -> None:
    before = _snapshot(harness)
    reply = await harness.say(person(1), "/newchannel news Daily News")
    assert "Only operators" in reply
    assert _snapshot(harness) == before


async def test_duplicate_handle_is_refused(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    before = _snapshot(harness)
    assert "taken" in await harness.say(OPERATOR, "/newchannel news Other")
    assert _snapshot(harness) == before


async def test_unknown_handle_is_refused_for_every_channel_command(harness: Harness) -> None:
    for text in [
        "/follow nope",
        "/info nope",
        "/unfollow nope",
        "/mute nope",
        "/unmute nope",
        "/post nope hi",
        "/describe nope x",
        "/stats nope",
        "/admins nope",
        "/invite-admin nope",
        "/removeadmin nope 2",
        "/mirror nope",
        "/scheduled nope",
        '/poll nope "q" "a" "b"',
        "/deletechannel nope",
    ]:
        reply = await harness.say(OPERATOR, text)
        assert "There is no channel 'nope'" in reply, text


async def test_every_admin_command_refused_for_a_non_admin_and_nothing_changes(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    outsider = person(5)
    await harness.say(outsider, "/follow news")
    await harness.say(OPERATOR, "/post news first")
    await harness.settle()
    before = _snapshot(harness)
    attempts = {
        "/newchannel other Other": "Only operators",
        "/describe news hacked": "Only admins",
        "/post news spam": "Only admins",
        '/poll news "q" "a" "b"': "Only admins",
        "/schedule news in 2h later": "Only admins",
        '/every news "daily 09:00" hi': "Only admins",
        "/scheduled news": "Only admins",
        "/cancel 1": "Only admins",
        "/edit 1 changed": "Only admins",
        "/delete 1": "Only admins",
        "/stats news": "Only admins",
        "/admins news": "Only admins",
        "/invite-admin news": "Only admins",
        "/removeadmin news 1": "Only the owner",
        "/mirror news": "Only admins",
        "/deletechannel news": "Only the owner",
    }
    for text, expected in attempts.items():
        reply = await harness.say(outsider, text)
        assert expected in reply, (text, reply)
    await harness.settle()
    assert _snapshot(harness) == before
    assert [c.text for c in harness.adapter.calls] == ["first"]


async def test_invite_accept_and_admin_powers(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    reply = await harness.say(OPERATOR, "/invite-admin news")
    code = reply.split(": ", 1)[1].split()[0]
    helper = person(2)
    assert "admin #2" in await harness.say(helper, f"/accept {code}")
    assert "not valid" in await harness.say(person(3), f"/accept {code}")  # one-time
    assert "on its way" in await harness.say(helper, "/post news from the new admin")
    # an admin is not the owner
    assert "Only the owner" in await harness.say(helper, "/removeadmin news 1")
    assert "cannot be removed" in await harness.say(OPERATOR, "/removeadmin news 1")
    assert "removed" in await harness.say(OPERATOR, "/removeadmin news 2")
    assert "Only admins" in await harness.say(helper, "/post news again")


async def test_expired_invite_code_is_refused(store_url: str) -> None:
    from tests.support import build

    now = [1_800_000_000.0]
    h = build(store_url, clock=lambda: now[0])
    await h.say(OPERATOR, "/newchannel news Daily News")
    code = (await h.say(OPERATOR, "/invite-admin news")).split(": ", 1)[1].split()[0]
    now[0] += 7 * 24 * 3600 + 1
    before = _snapshot(h)
    assert "expired" in await h.say(person(2), f"/accept {code}")
    assert _snapshot(h) == before


async def _invite(h: Harness) -> str:
    reply = await h.say(OPERATOR, "/invite-admin news")
    assert "One-time admin code" in reply, reply
    return reply.split(": ", 1)[1].split()[0]


async def test_seventeenth_admin_is_refused(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    accepted = 0
    for i in range(16):  # at most 5 codes may be open at once: accept each before the next
        reply = await harness.say(OPERATOR, "/invite-admin news")
        if "the most allowed" in reply:
            break
        code = reply.split(": ", 1)[1].split()[0]
        if "You are now admin" in await harness.say(person(100 + i), f"/accept {code}"):
            accepted += 1
    assert accepted == 15  # the owner plus 15 = 16 admins
    assert "16 admins, the most allowed" in await harness.say(OPERATOR, "/invite-admin news")


async def test_seventeenth_admin_refused_even_with_codes_issued_earlier(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    n = 0
    for _ in range(2):  # 10 admins join, five codes at a time (the most that may be open)
        for code in [await _invite(harness) for _ in range(5)]:
            assert "You are now admin" in await harness.say(person(200 + n), f"/accept {code}")
            n += 1
    codes = [await _invite(harness) for _ in range(4)]
    spare = await _invite(harness)  # issued while there was still room
    for code in codes:
        assert "You are now admin" in await harness.say(person(200 + n), f"/accept {code}")
        n += 1
    assert "You are now admin" in await harness.say(person(200 + n), f"/accept {await _invite(harness)}")
    n += 1
    assert n == 15  # the owner plus 15 = 16 admins
    before = _snapshot(harness)
    assert "the most allowed" in await harness.say(person(999), f"/accept {spare}")
    assert _snapshot(harness) == before


async def test_malformed_commands_get_usage_and_change_nothing(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    before = _snapshot(harness)
    for text in [
        "/follow",
        "/post",
        "/vote x",
        '/poll news "only one"',
        "/edit",
        "/delete abc",
        "/removeadmin news",
        "/accept",
        "/newchannel",
        "/schedule news",
        "/frobnicate",
    ]:
        reply = await harness.say(OPERATOR, text)
        assert reply and ("Usage:" in reply or "Unknown command" in reply), (text, reply)
    assert _snapshot(harness) == before


async def test_votes_change_until_close_then_refused(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    await harness.say(OPERATOR, '/poll news "Lunch?" "Pizza" "Sushi"')
    await harness.settle()
    a, b = person(1), person(2)
    await harness.say(a, "/vote 1 1")
    await harness.say(b, "/vote 1 2")
    await harness.say(b, "/vote 1 1")
    assert "one choice" in await harness.say(a, "/vote 1 1 2")
    results = await harness.say(a, "/results 1")
    assert "Pizza — 2" in results and "Sushi — 0" in results
    assert harness.engine.close_poll(1)
    assert "closed" in await harness.say(a, "/vote 1 2")
    assert "Pizza — 2" in await harness.say(a, "/results 1")


async def test_follower_sees_counts_never_identities(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    for n in range(3):
        await harness.say(person(n), "/follow news")
    info = await harness.say(person(9), "/info news")
    assert "3 followers" in info
    stats = await harness.say(OPERATOR, "/stats news")
    for n in range(3):
        assert person(n).id not in info + stats
    assert "Followers: 3" in stats


async def test_forgetme_erases_follows_votes_and_reactions(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    a = person(1)
    await harness.say(a, "/follow news")
    await harness.say(OPERATOR, '/poll news "Q" "x" "y"')
    await harness.settle()
    await harness.say(a, "/vote 1 2")
    assert "erased" in await harness.say(a, "/forgetme")
    assert "0 voters" in await harness.say(OPERATOR, "/results 1")
    assert "You follow no channels" in await harness.say(a, "/following")
    assert "Followers: 0" in await harness.say(OPERATOR, "/stats news")


async def test_help_shows_admin_commands_only_to_admins(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    follower_help = await harness.say(person(1), "/help")
    admin_help = await harness.say(OPERATOR, "/help")
    assert "/follow" in follower_help and "/post" not in follower_help
    assert "/post" in admin_help and "/newchannel" in admin_help


async def test_operator_adds_a_mirror_room_and_it_gets_every_post(store_url: str) -> None:
    from tests.support import FakeAdapter, build

    h = build(store_url, adapter=FakeAdapter("telegram"))
    await h.worker.start()
    try:
        await h.say(OPERATOR, "/newchannel news Daily News")
        assert "Only admins" in await h.say(person(1), "/mirror news telegram:-1001")
        reply = await h.say(OPERATOR, "/mirror news telegram:-1001")
        assert "now mirrors" in reply and "see each other" in reply
        assert "already mirrors" in await h.say(OPERATOR, "/mirror news telegram:-1001")
        await h.say(OPERATOR, "/post news to the mirror")
        await h.settle()
        assert [c.text for c in h.adapter.sends_to("-1001")] == ["to the mirror"]
        assert "telegram:-1001" in await h.say(OPERATOR, "/mirror news")
    finally:
        await h.worker.stop()


async def test_creating_a_matrix_mirror_needs_the_matrix_adapter(harness: Harness) -> None:
    await harness.say(OPERATOR, "/newchannel news Daily News")
    assert "while the Matrix adapter runs" in await harness.say(OPERATOR, "/mirror news create matrix")
    created: list[tuple[str, str]] = []

    async def factory(platform: str, name: str, topic: str) -> str:
        created.append((platform, name))
        return "!mirror:localhost"

    harness.engine.set_mirror_factory(factory)
    assert "Only operators" in await harness.say(person(1), "/mirror news create matrix")
    assert "matrix:!mirror:localhost now mirrors" in await harness.say(OPERATOR, "/mirror news create matrix")
    assert created == [("matrix", "Daily News")]
