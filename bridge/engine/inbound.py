"""Inbound events other than plain commands: media sent with a command (downloaded only for an
authorized admin, within its cap), votes in a platform's own polls, and emoji reactions."""

from __future__ import annotations

import logging
from dataclasses import replace

from bridge.commands import Command, CommandError, PostArgs, ScheduleArgs
from bridge.engine import quizzes
from bridge.engine.context import Context, find_channel, poll_for_voting, require_admin
from bridge.engine.core import Actor, EngineCore, Refusal
from bridge.engine.registry import ROUTES
from bridge.i18n import _
from bridge.models import PostStatus
from bridge.ports import DeliveryError, MediaTooLarge, Message, PollVote, Reaction, Reply
from bridge.safetext import is_single_emoji

log = logging.getLogger(__name__)


async def with_media(
    core: EngineCore, actor: Actor, message: Message, parsed: Command | CommandError | None
) -> Message:
    """Download a message's media only for an admin posting it, within the kind's cap.

    Anything else (a stranger's photo captioned `/help`, a caption that is no command)
    never triggers a download: the media goes on without bytes, and no handler uses it.
    """
    media = message.media
    assert media is not None
    if not isinstance(parsed, Command) or not ROUTES[type(parsed)].keeps_media:
        return message
    assert isinstance(parsed, PostArgs | ScheduleArgs), "a command that keeps media names its channel"
    with core.store.unit_of_work() as s:
        ctx = Context(core, s, actor)
        require_admin(ctx, find_channel(ctx, parsed.handle))
    cap = core.options.media_limits.get(media.kind)
    if cap is None:
        raise Refusal(_("Only photos, videos, voice notes and stickers can be posted as media."))
    too_big = Refusal(
        _(
            "This {value} is larger than the {value2:g} MB allowed for a {value}; nothing "
            "was posted. Send a smaller one."
        ).format(value=media.kind.value, value2=round(cap / (1024 * 1024), 3))
    )
    if (media.size or 0) > cap or len(media.data or b"") > cap:
        raise too_big
    if media.data is not None or media.fetch is None:
        return message
    try:
        data = await media.fetch(cap)
    except MediaTooLarge as exc:
        raise too_big from exc
    except DeliveryError as exc:
        if media.platform_ref:  # the platform can still reuse its own copy
            log.warning("inbound media could not be downloaded: %s", type(exc).__name__)
            return message
        raise Refusal(
            _(
                "The {value} could not be downloaded; nothing was posted. Try again."
            ).format(value=media.kind.value)
        ) from exc
    if len(data) > cap:
        raise too_big
    return replace(message, media=replace(media, data=data, size=len(data), fetch=None))


def native_vote(core: EngineCore, actor: Actor, vote: PollVote) -> list[Reply]:
    """A vote cast in a platform's own poll: recorded like `/vote`, answered with nothing; in a
    quiz the first answer counts, and is answered with the reveal where the platform has none."""
    with core.store.unit_of_work() as s:
        platform = actor.address.platform
        copy = core.store.posts.copy_by_ref_index(s, platform, core.sealer.ref_index(platform, vote.post_ref))
        if copy is None:
            return []
        ctx = Context(core, s, actor)
        post, options = poll_for_voting(ctx, copy.post_id, check_visibility=False)
        positions = [i for i in vote.option_ids if 0 <= i < len(options)]
        if not post.poll_multi:
            positions = positions[:1]
        if not quizzes.is_quiz(post):
            core.store.posts.set_votes(s, post.id or 0, actor.index, positions)
            return []
        if not quizzes.first_answer(ctx, post, positions):
            return []  # a changed or retracted answer: the first one counts, revealed once
        if not quizzes.reveal_after_native_vote(ctx, post, copy):
            return []
        return [quizzes.reveal(post, options, positions[0])]


def reaction(core: EngineCore, actor: Actor, reaction: Reaction) -> list[Reply]:
    """An emoji reaction to a copy of a post: counted once per person and post."""
    if reaction.key is not None and not is_single_emoji(reaction.key):
        return []  # only one emoji counts; anything else is not a reaction
    with core.store.unit_of_work() as s:
        platform = actor.address.platform
        index = core.sealer.ref_index(platform, reaction.post_ref)
        copy = core.store.posts.copy_by_ref_index(s, platform, index)
        if copy is None:
            return []
        post = core.store.posts.get(s, copy.post_id)
        if post is None or post.status == PostStatus.DELETED.value:
            return []
        core.store.posts.set_reaction(s, copy.post_id, actor.index, reaction.key)
    return []
