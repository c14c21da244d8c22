"""Quizzes in the engine, on SQLite and PostgreSQL: the first answer counts, the answer is
revealed to that person once (where the platform has no quiz of its own, and never into a
shared room), `/results` counts correct answers, `/forgetme` and key rotation reach the answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlmodel import select

from bridge.models import Post, QuizAnswer
from bridge.ports import Address, Content, MessageRef, PollVote
from tests.support import OPERATOR, FakeAdapter, Harness, build, person

QUIZ = '/quiz news "Capital of France?" "Lyon" "Paris" "Nice" --answer 2 --explain "Paris since 508."'


class RefAdapter(FakeAdapter):
    """The fake adapter, remembering each copy's reference by (chat, post)."""

    def __init__(self, platform: str = "fake") -> None:
        super().__init__(platform)
        self.refs: dict[tuple[str, int], MessageRef] = {}

    async def send(self, address: Address, content: Content) -> MessageRef:
        """Send and remember where the copy landed."""
        ref = await super().send(address, content)
        self.refs[(address.target, content.post_id)] = ref
        return ref


async def _harness(store_url: str, platform: str) -> Harness:
    h = build(store_url, adapter=RefAdapter(platform))
    await h.worker.start()
    return h


@pytest.fixture
async def fake_platform(store_url: str) -> AsyncIterator[Harness]:
    """A platform without quizzes of its own (the bot reveals the answer)."""
    h = await _harness(store_url, "fake")
    yield h
    await h.worker.stop()
    h.store.dispose()


@pytest.fixture
async def telegram_platform(store_url: str) -> AsyncIterator[Harness]:
    """The telegram platform name: its plug-in sends native quizzes."""
    h = await _harness(store_url, "telegram")
    yield h
    await h.worker.stop()
    h.store.dispose()


async def _quiz(h: Harness, followers: list[Address], operator: Address = OPERATOR) -> None:
    await h.say(operator, "/newchannel news Daily News")
    for who in followers:
        await h.say(who, "/follow news")
    assert "is on its way to" in await h.say(operator, QUIZ)
    await h.settle()


def _vote(h: Harness, who: Address, options: tuple[int, ...]) -> PollVote:
    adapter = h.adapter
    assert isinstance(adapter, RefAdapter)
    ref = adapter.refs[(who.target, 1)]
    return PollVote(who, ref.alt or ref.key, options)


async def test_a_quiz_is_stored_and_rendered_with_its_correct_option(fake_platform: Harness) -> None:
    h = fake_platform
    await _quiz(h, [person(1)])
    with h.store.session() as s:
        post = s.exec(select(Post)).one()
        assert (post.kind, post.quiz_correct, post.quiz_explanation) == ("poll", 1, "Paris since 508.")
        view = h.store.posts.view(s, 1, 0.0)
    assert view is not None and view.content.poll is not None
    poll = view.content.poll
    assert poll.quiz and poll.correct == 1 and poll.explanation == "Paris since 508." and not poll.multi


async def test_vote_reveals_right_or_wrong_once_and_results_count_correct_answers(
    fake_platform: Harness,
) -> None:
    h = fake_platform
    ann, ben, cem = person(1), person(2), person(3)
    await _quiz(h, [ann, ben, cem])
    right = await h.say(ann, "/vote 1 2")
    assert right == "Quiz #1: right! The answer is 2. Paris.\nParis since 508."
    wrong = await h.say(ben, "/vote 1 3")
    assert wrong.startswith("Quiz #1: not quite — you answered 3. Nice; the answer is 2. Paris.")
    # a changed answer is not taken and reveals nothing new
    again = await h.say(ben, "/vote 1 2")
    assert "already answered quiz #1" in again and "Paris" not in again
    results = await h.say(cem, "/results 1")
    assert "2 voters" in results and "Paris — 1" in results and "Nice — 1" in results
    assert results.endswith("Answered correctly: 1 of 2")
    assert not any(p.id in results for p in (ann, ben, cem))


async def test_native_vote_is_revealed_once_to_the_voter_and_a_change_is_ignored(
    fake_platform: Harness,
) -> None:
    h = fake_platform
    ann = person(1)
    await _quiz(h, [ann])
    replies = await h.engine.handle(_vote(h, ann, (0,)))
    assert [r.text.splitlines()[0] for r in replies] == [
        "Quiz #1: not quite — you answered 1. Lyon; the answer is 2. Paris."
    ]
    assert await h.engine.handle(_vote(h, ann, (1,))) == []  # changed in the client: no reveal
    assert await h.engine.handle(_vote(h, ann, ())) == []  # retracted: the first answer stays
    results = await h.say(OPERATOR, "/results 1")
    assert "Lyon — 1" in results and "Paris — 0" in results
    assert results.endswith("Answered correctly: 0 of 1")


async def test_a_platform_with_native_quizzes_counts_the_answer_without_a_reveal(
    telegram_platform: Harness,
) -> None:
    h = telegram_platform
    ann = person(1, "telegram")
    operator = Address("telegram", "1")
    h.engine.add_operator(operator)
    await _quiz(h, [ann], operator)
    assert await h.engine.handle(_vote(h, ann, (1,))) == []
    assert (await h.say(operator, "/results 1")).endswith("Answered correctly: 1 of 1")


async def test_a_vote_in_a_mirror_room_is_counted_but_never_revealed_there(store_url: str) -> None:
    h = await _harness(store_url, "matrix")  # a platform with mirror rooms and no native quiz
    try:
        await h.say(OPERATOR, "/newchannel news Daily News")
        assert "now mirrors" in await h.say(OPERATOR, "/mirror news matrix:!room:localhost")
        await _quiz_only(h)
        member = Address("matrix", "@member:localhost", chat="!room:localhost")
        adapter = h.adapter
        assert isinstance(adapter, RefAdapter)
        ref = adapter.refs[("!room:localhost", 1)]
        assert await h.engine.handle(PollVote(member, ref.alt or ref.key, (1,))) == []
        assert (await h.say(OPERATOR, "/results 1")).endswith("Answered correctly: 1 of 1")
    finally:
        await h.worker.stop()
        h.store.dispose()


async def _quiz_only(h: Harness) -> None:
    assert "is on its way to" in await h.say(OPERATOR, QUIZ)
    await h.settle()


async def test_forgetme_erases_quiz_answers(fake_platform: Harness) -> None:
    h = fake_platform
    ann = person(1)
    await _quiz(h, [ann])
    await h.say(ann, "/vote 1 2")
    assert "erased" in await h.say(ann, "/forgetme")
    assert (await h.say(OPERATOR, "/results 1")).endswith("Answered correctly: 0 of 0")
    with h.store.session() as s:
        assert s.exec(select(QuizAnswer)).all() == []


async def test_key_rotation_moves_quiz_answers_to_the_new_blind_index(fake_platform: Harness) -> None:
    h = fake_platform
    await _quiz(h, [person(1)])
    with h.store.session() as s:
        assert h.store.posts.first_quiz_answer(s, 1, "old-index", True)
        assert not h.store.posts.first_quiz_answer(s, 1, "old-index", False)
        s.commit()
    with h.store.session() as s:
        h.store.keyring.reindex_accounts(s, "follower", [(10**6, b"x", "old-index", "new-index")])
        s.commit()
    with h.store.session() as s:
        assert [a.voter_index for a in s.exec(select(QuizAnswer))] == ["new-index"]
        assert h.store.posts.quiz_score(s, 1) == (1, 1)


async def test_a_scheduled_quiz_is_published_as_a_quiz(fake_platform: Harness) -> None:
    h = fake_platform
    await h.say(OPERATOR, "/newchannel news Daily News")
    reply = await h.say(OPERATOR, '/schedule news in 1h /quiz "Q?" "a" "b" --answer 2 --explain "b!"')
    assert "is scheduled for" in reply
    with h.store.session() as s:
        post = s.exec(select(Post)).one()
        assert (post.status, post.quiz_correct, post.quiz_explanation) == ("scheduled", 1, "b!")


async def test_plain_polls_keep_changeable_votes_and_show_no_score(fake_platform: Harness) -> None:
    h = fake_platform
    await h.say(OPERATOR, "/newchannel news Daily News")
    await h.say(OPERATOR, '/poll news "Lunch?" "Pizza" "Sushi"')
    await h.settle()
    await h.say(person(1), "/vote 1 1")
    assert "recorded" in await h.say(person(1), "/vote 1 2")
    assert "Answered correctly" not in await h.say(OPERATOR, "/results 1")
