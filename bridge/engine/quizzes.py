"""Quizzes: a poll with one correct option. A person's first answer counts (right or wrong, by
blind index only); where the platform has no quiz of its own, the bot reveals the correct
answer and the explanation to that person right after it, once.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.engine.context import Context
from bridge.i18n import _
from bridge.models import Delivery, PollOption, Post
from bridge.ports import Reply


def is_quiz(post: Post) -> bool:
    """Whether a poll post is a quiz."""
    return post.quiz_correct is not None


def native_quiz(ctx: Context, platform: str) -> bool:
    """Whether `platform` shows the answer itself (Telegram's quiz polls); unknown: no."""
    try:
        return ctx.core.platforms.plugin(platform).native_quiz
    except KeyError:
        return False


def first_answer(ctx: Context, post: Post, positions: Sequence[int]) -> bool:
    """Record the sender's answer to a quiz if it is their first (the votes too); False when
    they had answered already, and then nothing changes."""
    if not positions:
        return False  # a retracted answer: a quiz keeps the first one
    correct = positions[0] == post.quiz_correct
    if not ctx.store.posts.first_quiz_answer(ctx.s, post.id or 0, ctx.actor.index, correct):
        return False
    ctx.store.posts.set_votes(ctx.s, post.id or 0, ctx.actor.index, positions[:1])
    return True


def reveal(post: Post, options: Sequence[PollOption], chosen: int) -> Reply:
    """What the bot tells one person right after their answer: right or not, the correct
    answer, the explanation."""
    right = options[post.quiz_correct or 0]
    answer = f"{right.position + 1}. {right.text}"
    if chosen == post.quiz_correct:
        text = _("Quiz #{post_id}: right! The answer is {answer}.").format(post_id=post.id, answer=answer)
    else:
        mine = next((o.text for o in options if o.position == chosen), "?")
        text = _(
            "Quiz #{post_id}: not quite — you answered {value}. {mine}; the answer is "
            "{answer}."
        ).format(post_id=post.id, value=chosen + 1, mine=mine, answer=answer)
    if post.quiz_explanation:
        text += f"\n{post.quiz_explanation}"
    return Reply(text)


def reveal_after_native_vote(ctx: Context, post: Post, copy: Delivery) -> bool:
    """Whether a vote in a platform's own poll gets the reveal: not where the platform shows
    it itself, and only on the voter's own copy (a mirror room's members see each other)."""
    if native_quiz(ctx, ctx.actor.address.platform) or copy.follower_id is None:
        return False
    follower = ctx.store.followers.by_index(ctx.s, ctx.actor.index)
    return follower is not None and follower.id == copy.follower_id


def score_line(ctx: Context, post: Post) -> str:
    """`/results` of a quiz: how many answered correctly (counts only)."""
    answered, right = ctx.store.posts.quiz_score(ctx.s, post.id or 0)
    return _("Answered correctly: {right} of {answered}").format(right=right, answered=answered)
