"""Reactions, their removal, poll answers and commands from followers become neutral inbound
events, each numbered for the claim that keeps several processes from handling it twice."""

from __future__ import annotations

import pytest

from adapters.base import Address, Content, Message, PollContent, PollVote, PostKind, Reaction
from bridge.privacy import Sealer, decode_key, generate_key

from .conftest import Recorder

pytestmark = [pytest.mark.matrix, pytest.mark.integration]


def _content(kind: PostKind, delivery_id: int, **kwargs) -> Content:
    return Content(post_id=1, kind=kind, channel_handle="news", channel_name="News",
                   delivery_id=delivery_id, **kwargs)


async def test_reaction_and_its_redaction_become_reaction_events(
    bot_user, adapter_factory, follower_factory
):
    recorder = Recorder()
    adapter = await adapter_factory(bot_user, recorder)
    alice = await follower_factory()
    room_id = await alice.open_dm(bot_user.user_id, encrypted=True)
    sender = Address("matrix", alice.user_id, chat=room_id)
    ref = await adapter.send(sender, _content(PostKind.TEXT, 101, text="react to me"))
    event_id = ref.key.split("|", 1)[1]
    await alice.wait_event(room_id, lambda s: s.get("event_id") == event_id)

    reaction_id = await alice.send(room_id, "m.reaction", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": "👍"}})
    assert await recorder.next() == Reaction(sender, ref.key, "👍")

    await alice.client.room_redact(room_id, reaction_id)
    assert await recorder.next() == Reaction(sender, ref.key, None)


async def test_poll_answers_in_both_shapes_become_poll_votes(
    bot_user, adapter_factory, follower_factory
):
    recorder = Recorder()
    adapter = await adapter_factory(bot_user, recorder)
    alice = await follower_factory()
    room_id = await alice.open_dm(bot_user.user_id, encrypted=True)
    sender = Address("matrix", alice.user_id, chat=room_id)
    poll = PollContent("Best?", ("a", "b", "c"), multi=True)
    ref = await adapter.send(sender, _content(PostKind.POLL, 102, poll=poll))
    start_id = ref.key.split("|", 1)[1]
    relates = {"rel_type": "m.reference", "event_id": start_id}

    await alice.send(room_id, "org.matrix.msc3381.poll.response", {
        "m.relates_to": relates, "org.matrix.msc3381.poll.response": {"answers": ["0", "2"]}})
    assert await recorder.next() == PollVote(sender, ref.key, (0, 2))

    await alice.send(room_id, "m.poll.response", {"m.relates_to": relates, "m.selections": ["1"]})
    assert await recorder.next() == PollVote(sender, ref.key, (1,))


async def test_each_event_carries_the_number_every_process_would_claim_it_by(
    bot_user, adapter_factory, follower_factory
):
    """A lease holder that stalled and the process that took over may both sync the same event:
    both number it alike (a keyed hash of its event id under the app's key), so `ReceivedOnce`
    lets one of them handle it. The number names no event or person without the key."""
    key = generate_key()
    recorder = Recorder()
    adapter = await adapter_factory(bot_user, recorder, sealer=Sealer(decode_key(key)))
    another_process = Sealer(decode_key(key))
    alice = await follower_factory()
    room_id = await alice.open_dm(bot_user.user_id, encrypted=True)
    sender = Address("matrix", alice.user_id, chat=room_id)

    command_id = await alice.say(room_id, "/help")
    command = await recorder.next()
    assert isinstance(command, Message) and command.text == "/help"
    assert command.update == another_process.update_number("matrix", command_id)

    ref = await adapter.send(sender, _content(PostKind.TEXT, 103, text="react to me"))
    reaction_id = await alice.send(room_id, "m.reaction", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": ref.key.split("|", 1)[1], "key": "👍"}})
    reaction = await recorder.next()
    assert reaction == Reaction(sender, ref.key, "👍")
    assert reaction.update == another_process.update_number("matrix", reaction_id)

    numbers = {command.update, reaction.update}
    assert len(numbers) == 2 and all(n is not None and 0 <= n < 2**60 for n in numbers)
    assert Sealer(decode_key(generate_key())).update_number("matrix", command_id) != command.update
