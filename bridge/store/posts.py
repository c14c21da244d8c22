"""Posts and what hangs off them: poll options, votes, quiz answers, reactions, media, delivered
copies."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import case, text
from sqlmodel import Session, col, delete, func, select

from bridge.models import (
    Channel,
    Delivery,
    DeliveryAction,
    MediaBlob,
    MediaUpload,
    PollOption,
    Post,
    PostReaction,
    QuizAnswer,
    Tier,
    Vote,
)
from bridge.ports import Content, MediaContent, PollContent, PostKind
from bridge.privacy import Sealed
from bridge.store.rows import PostView, Tally

#: a pay-per-post copy's payload: the post, never a person (Telegram: at most 128 bytes)
PAID_PAYLOAD_PREFIX = "cbp."


def paid_payload(post_id: int) -> str:
    """The payload a pay-per-post copy of `post_id` is sent with."""
    return f"{PAID_PAYLOAD_PREFIX}{post_id}"


def post_of_paid_payload(payload: str) -> int | None:
    """The post a pay-per-post payload names (None: not one this bot wrote)."""
    digits = payload.removeprefix(PAID_PAYLOAD_PREFIX)
    if digits == payload or not digits.isdigit() or len(digits) > 18:
        return None
    return int(digits)


class Posts:
    """Named queries on posts, polls, votes, reactions and media (the caller's session)."""

    def get(self, s: Session, post_id: int) -> Post | None:
        """A post by id."""
        return s.get(Post, post_id)

    def recent(self, s: Session, channel_id: int, limit: int = 5) -> list[Post]:
        """The latest published (or deleted) posts of a channel, newest first."""
        return list(
            s.exec(
                select(Post)
                .where(Post.channel_id == channel_id)
                .where(col(Post.published_at).is_not(None))
                .order_by(col(Post.id).desc())
                .limit(limit)
            )
        )

    # ---- polls, votes, reactions ---------------------------------------------------------

    def poll_options(self, s: Session, post_id: int) -> list[PollOption]:
        """A poll's options in order."""
        return list(
            s.exec(select(PollOption).where(PollOption.post_id == post_id).order_by(col(PollOption.position)))
        )

    def tally(self, s: Session, post_id: int) -> Tally:
        """Votes per option position, and the number of distinct voters."""
        rows = s.exec(
            select(Vote.position, func.count()).where(Vote.post_id == post_id).group_by(col(Vote.position))
        ).all()
        voters = s.exec(
            select(func.count(func.distinct(Vote.voter_index))).where(Vote.post_id == post_id)
        ).one()
        return Tally({int(p): int(n) for p, n in rows}, int(voters))

    def set_votes(self, s: Session, post_id: int, voter_index: str, positions: Sequence[int]) -> None:
        """Replace one voter's choices in one poll."""
        s.exec(delete(Vote).where(col(Vote.post_id) == post_id, col(Vote.voter_index) == voter_index))
        for position in sorted(set(positions)):
            s.add(Vote(post_id=post_id, voter_index=voter_index, position=position))

    def first_quiz_answer(self, s: Session, post_id: int, voter_index: str, correct: bool) -> bool:
        """Record one person's answer to a quiz if it is their first; False when they had
        answered already (a quiz keeps the first answer and reveals it once)."""
        answered = s.exec(
            select(QuizAnswer.id).where(QuizAnswer.post_id == post_id, QuizAnswer.voter_index == voter_index)
        ).first()
        if answered is not None:
            return False
        s.add(QuizAnswer(post_id=post_id, voter_index=voter_index, correct=correct))
        s.flush()  # a concurrent first answer of the same person fails here, not at commit
        return True

    def quiz_score(self, s: Session, post_id: int) -> tuple[int, int]:
        """(people who answered a quiz, how many of them answered correctly): counts only."""
        right = func.coalesce(func.sum(case((col(QuizAnswer.correct), 1), else_=0)), 0)
        answered, correct = s.exec(select(func.count(), right).where(QuizAnswer.post_id == post_id)).one()
        return int(answered), int(correct)

    def set_reaction(self, s: Session, post_id: int, reactor_index: str, key: str | None) -> None:
        """Replace (or with None, remove) one reactor's reaction on one post."""
        s.exec(
            delete(PostReaction).where(
                col(PostReaction.post_id) == post_id, col(PostReaction.reactor_index) == reactor_index
            )
        )
        if key:
            s.add(PostReaction(post_id=post_id, reactor_index=reactor_index, key=key))

    def reaction_counts(self, s: Session, post_id: int) -> dict[str, int]:
        """Reactions per emoji on a post, commonest first."""
        rows = s.exec(
            select(PostReaction.key, func.count())
            .where(PostReaction.post_id == post_id)
            .group_by(col(PostReaction.key))
        ).all()
        return {k: int(n) for k, n in sorted(rows, key=lambda r: (-r[1], r[0]))}

    # ---- delivered copies ----------------------------------------------------------------

    def copy_by_ref_index(self, s: Session, platform: str, ref_index: str) -> Delivery | None:
        """The delivered send whose platform reference (key or alt) has the blind index
        `ref_index` (`Sealer.ref_index`)."""
        found = s.exec(
            select(Delivery).where(
                Delivery.platform == platform,
                Delivery.ref_index == ref_index,
                Delivery.action == DeliveryAction.SEND.value,
            )
        ).first()
        if found is None:
            found = s.exec(
                select(Delivery).where(
                    Delivery.platform == platform,
                    Delivery.ref_alt_index == ref_index,
                    Delivery.action == DeliveryAction.SEND.value,
                )
            ).first()
        return found

    def copy_for_follower(self, s: Session, post_id: int, follower_id: int) -> Delivery | None:
        """The send row of one post to one follower."""
        return s.exec(
            select(Delivery).where(
                Delivery.post_id == post_id,
                Delivery.follower_id == follower_id,
                Delivery.action == DeliveryAction.SEND.value,
            )
        ).first()

    # ---- media ---------------------------------------------------------------------------

    def media(self, s: Session, media_id: int) -> MediaBlob | None:
        """A media blob by id."""
        return s.get(MediaBlob, media_id)

    def media_by_hash(self, s: Session, sha256: str, size: int) -> MediaBlob | None:
        """An already stored blob with the same content."""
        return s.exec(select(MediaBlob).where(MediaBlob.sha256 == sha256, MediaBlob.size == size)).first()

    def media_data(self, s: Session, media_id: int) -> bytes | None:
        """The bytes of a media blob."""
        data = s.exec(select(MediaBlob.data).where(MediaBlob.id == media_id)).first()
        return bytes(data) if data is not None else None

    def media_refs(self, s: Session, media_id: int) -> dict[str, str]:
        """Platform references of an uploaded blob."""
        rows = s.exec(select(MediaUpload).where(MediaUpload.media_id == media_id))
        return {row.platform: row.ref for row in rows}

    def save_media_ref(self, s: Session, media_id: int, platform: str, ref: str) -> None:
        """Remember a platform's reference for a blob (first one wins)."""
        exists = s.exec(
            select(MediaUpload).where(MediaUpload.media_id == media_id, MediaUpload.platform == platform)
        ).first()
        if exists is None:
            s.add(MediaUpload(media_id=media_id, platform=platform, ref=ref))

    def forget_media_ref(self, s: Session, media_id: int, platform: str, ref: str) -> None:
        """A platform refused a stored reference: forget it, so the next copy uploads again."""
        s.connection().execute(
            text("DELETE FROM mediaupload WHERE media_id = :m AND platform = :p AND ref = :r"),
            {"m": media_id, "p": platform, "r": ref},
        )

    # ---- the worker's view ---------------------------------------------------------------

    def count_purchase(self, s: Session, post_id: int) -> bool:
        """Count one purchase of a pay-per-post copy; False when no such post is on sale."""
        result = s.connection().execute(
            text("UPDATE post SET purchases = purchases + 1 WHERE id = :id AND stars IS NOT NULL"),
            {"id": post_id},
        )
        return result.rowcount == 1

    def view(self, s: Session, post_id: int, now: float) -> PostView | None:
        """Everything the worker needs to render copies of a post (media bytes excluded)."""
        post = s.get(Post, post_id)
        if post is None:
            return None
        channel = s.get(Channel, post.channel_id)
        if channel is None:
            return None
        media = None
        refs: dict[str, str] = {}
        if post.media_id is not None:
            blob = s.get(MediaBlob, post.media_id)
            if blob is not None:
                refs = self.media_refs(s, post.media_id)
                media = MediaContent(
                    blob_id=post.media_id,
                    kind=PostKind(blob.kind),
                    mime=blob.mime,
                    filename=blob.filename,
                    data=None,
                    width=blob.width,
                    height=blob.height,
                    duration=blob.duration,
                )
        poll = None
        if post.kind == PostKind.POLL.value:
            poll = PollContent(
                question=post.text,
                options=tuple(o.text for o in self.poll_options(s, post_id)),
                multi=post.poll_multi,
                closed=post.poll_closed_at is not None,
                correct=post.quiz_correct,
                explanation=post.quiz_explanation,
            )
        content = Content(
            post_id=post_id,
            kind=PostKind(post.kind),
            channel_handle=channel.handle,
            channel_name=channel.name,
            text=post.text,
            media=media,
            poll=poll,
            edited=post.edit_count > 0,
            stars=post.stars or None,
            paid_payload=paid_payload(post_id) if post.stars else None,
        )
        price = None
        if post.paid or post.stars:
            price = s.exec(
                select(Tier.price).where(Tier.channel_id == post.channel_id, col(Tier.on_sale).is_(True))
            ).first()
        author = (
            Sealed("post", post_id, post.author_platform, bytes(post.author_sealed))
            if post.author_platform and post.author_sealed
            else None
        )
        tally = self.tally(s, post_id) if poll is not None and poll.closed else None
        return PostView(
            post_id, post.status, post.edit_count, content, post.media_id, refs, now, author, price, tally
        )


__all__ = ["PAID_PAYLOAD_PREFIX", "Posts", "paid_payload", "post_of_paid_payload"]
