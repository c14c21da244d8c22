"""Admin commands: create and describe channels, post, schedule, edit and delete, manage
admins and mirrors, and see statistics (counts only, never identities)."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

from sqlmodel import Session

from bridge.commands import Command
from bridge.engine_base import (
    MAX_TEXT,
    Actor,
    EngineBase,
    Refusal,
    followers_text,
    new_invite_code,
    normalize_code,
    preview,
)
from bridge.models import (
    AdminInvite,
    AdminRole,
    Channel,
    DeliveryAction,
    MediaBlob,
    MediaUpload,
    MirrorRoom,
    PollOption,
    Post,
    PostEdit,
    PostStatus,
    RecurringPost,
)
from bridge.ports import (
    MEDIA_KINDS,
    InboundMedia,
    PostKind,
    Reply,
)
from bridge.safetext import clean, is_single_emoji, one_line

log = logging.getLogger(__name__)


class AdminCommands(EngineBase):
    """The commands of channel admins and operators."""

    def _cmd_newchannel(
        self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        if not actor.is_operator:
            raise Refusal("Only operators can create channels.")
        assert cmd.handle is not None
        if self.store.channels.handle_taken(s, cmd.handle):
            raise Refusal(f"The handle '{cmd.handle}' is taken; choose another.")
        name = one_line(cmd.text)
        if not name:
            raise Refusal("The name has no visible characters; choose another.")
        channel = Channel(handle=cmd.handle, name=name, created_at=self.clock(), last_admin_number=1)
        s.add(channel)
        s.flush()
        assert channel.id is not None
        self._add_admin(s, channel.id, 1, AdminRole.OWNER, actor.address)
        self.store.channels.audit(s, channel.id, "operator", "newchannel", channel.handle)
        return [
            Reply(
                f"Channel {channel.name} ({channel.handle}) created; you are its owner. "
                f"Post with /post {channel.handle} <text>; followers join with /follow {channel.handle}."
            )
        ]

    def _cmd_deletechannel(
        self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_owner(s, actor, channel)
        channel.deleted_at = self.clock()
        s.add(channel)
        for post in self.store.schedule.scheduled_posts(s, channel.id or 0):
            post.status = PostStatus.CANCELLED.value
            s.add(post)
        self.store.channels.audit(s, channel.id, who, "deletechannel", channel.handle)
        return [Reply(f"Channel {channel.handle} is deleted; followers receive nothing more from it.")]

    def _cmd_describe(
        self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        channel.description = clean(cmd.text).strip()
        s.add(channel)
        self.store.channels.audit(s, channel.id, who, "describe")
        return [Reply(f"Description of {channel.handle} updated.")]

    def _store_media(self, s: Session, media: InboundMedia, platform: str) -> int:
        digest = hashlib.sha256(media.data or (media.platform_ref or "").encode()).hexdigest()
        size = len(media.data or b"")
        blob = self.store.posts.media_by_hash(s, digest, size) if media.data else None
        if blob is None:
            blob = MediaBlob(
                kind=media.kind.value,
                mime=media.mime,
                filename=media.filename,
                sha256=digest,
                size=size,
                data=media.data,
                width=media.width,
                height=media.height,
                duration=media.duration,
            )
            s.add(blob)
            s.flush()
        assert blob.id is not None
        if media.platform_ref and platform not in self.store.posts.media_refs(s, blob.id):
            s.add(MediaUpload(media_id=blob.id, platform=platform, ref=media.platform_ref))
        return blob.id

    def _new_post(
        self, s: Session, actor: Actor, channel: Channel, cmd: Command, media: InboundMedia | None
    ) -> Post:
        text = cmd.text.strip()
        if len(text) > MAX_TEXT:
            raise Refusal(f"A post can have at most {MAX_TEXT} characters (this one has {len(text)}).")
        kind = PostKind.TEXT
        media_id = None
        if media is not None:
            if media.kind not in MEDIA_KINDS:
                raise Refusal("Only photos, videos and stickers can be posted as media.")
            if media.kind == PostKind.STICKER and text:
                raise Refusal("A sticker post cannot carry text; post the text separately.")
            kind = media.kind
            media_id = self._store_media(s, media, actor.address.platform)
        elif not text:
            raise Refusal(
                f"Nothing to post. Usage: /post {channel.handle} <text> (or media with that caption)"
            )
        post = Post(
            channel_id=channel.id or 0,
            kind=kind.value,
            text=text,
            media_id=media_id,
            created_at=self.clock(),
        )
        self._seal_author(s, post, actor.address)
        return post

    def _cmd_post(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        post = self._new_post(s, actor, channel, cmd, media)
        s.add(post)
        s.flush()
        self.store.channels.audit(s, channel.id, who, "post", f"#{post.id}")
        self._begin_publish(s, post)
        return [Reply(self._published_text(s, post, channel))]

    def _published_text(self, s: Session, post: Post, channel: Channel) -> str:
        count = self.store.followers.count(s, channel.id or 0)
        mirrors = len(self.store.channels.mirrors(s, channel.id or 0))
        where = followers_text(count) + (f" and {mirrors} mirror room(s)" if mirrors else "")
        return f"Post #{post.id} is on its way to {where}. /stats {channel.handle} shows its delivery."

    def _build_poll(self, s: Session, actor: Actor, channel: Channel, cmd: Command) -> Post:
        closes_at = None
        if cmd.when is not None:
            closes_at = self._when(cmd.when)
        post = Post(
            channel_id=channel.id or 0,
            kind=PostKind.POLL.value,
            text=clean(cmd.text).strip(),
            poll_multi=cmd.multi,
            poll_closes_at=closes_at,
            created_at=self.clock(),
        )
        self._seal_author(s, post, actor.address)
        for position, option in enumerate(cmd.options):
            s.add(PollOption(post_id=post.id or 0, position=position, text=one_line(option)))
        return post

    def _cmd_poll(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        post = self._build_poll(s, actor, channel, cmd)
        self.store.channels.audit(s, channel.id, who, "poll", f"#{post.id}")
        self._begin_publish(s, post)
        text = self._published_text(s, post, channel)
        if post.poll_closes_at:
            text += f" It closes {self._local(post.poll_closes_at)}."
        return [Reply(text)]

    def _cmd_schedule(
        self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        at = self._when(cmd.when or "")
        if cmd.sub is not None:
            post = self._build_poll(s, actor, channel, cmd.sub)
            if post.poll_closes_at is not None and post.poll_closes_at <= at:
                raise Refusal(
                    f"The poll would close ({self._local(post.poll_closes_at)}) before it is "
                    f"published ({self._local(at)}); choose a later --closes."
                )
        else:
            post = self._new_post(s, actor, channel, cmd, media)
            s.add(post)
        post.status = PostStatus.SCHEDULED.value
        post.scheduled_at = at
        s.add(post)
        s.flush()
        self.store.channels.audit(s, channel.id, who, "schedule", f"#{post.id}")
        if self._on_work:
            self._on_work()
        return [Reply(f"Post #{post.id} is scheduled for {self._local(at)}. /cancel {post.id} cancels it.")]

    def _cmd_every(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        if self._parse_recurrence is None:
            raise Refusal("Recurring posts are not available in this process.")
        try:
            recurrence = self._parse_recurrence(cmd.spec or "")
        except ValueError as exc:
            raise Refusal(str(exc)) from exc
        if not cmd.text.strip():
            raise Refusal("A recurring post needs text.")
        now = datetime.fromtimestamp(self.clock(), UTC)
        next_at = recurrence.next_after(now, self.options.tz).timestamp()
        row = RecurringPost(
            channel_id=channel.id or 0,
            spec=recurrence.text,
            text=cmd.text.strip(),
            created_at=self.clock(),
            next_at=next_at,
        )
        self._seal_author(s, row, actor.address)
        self.store.channels.audit(s, channel.id, who, "every", f"r{row.id}")
        if self._on_work:
            self._on_work()
        return [
            Reply(
                f"Recurring post r{row.id} ({recurrence.text}); next at {self._local(next_at)}. "
                f"/cancel r{row.id} stops it."
            )
        ]

    def _cmd_scheduled(
        self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        self._require_admin(s, actor, channel)
        posts = self.store.schedule.scheduled_posts(s, channel.id or 0)
        recurring = self.store.schedule.recurring_posts(s, channel.id or 0)
        if not posts and not recurring:
            return [Reply(f"Nothing is scheduled in {channel.handle}.")]
        lines = [f"#{p.id} {p.kind} at {self._local(p.scheduled_at or 0)}: {preview(p.text)}" for p in posts]
        lines += [f"r{r.id} every {r.spec}: {preview(r.text)}" for r in recurring]
        return [Reply(f"Scheduled in {channel.handle}:\n" + "\n".join(lines))]

    def _cmd_cancel(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        if cmd.code is not None and cmd.code.startswith("r"):
            return self._cancel_recurring(s, actor, cmd.code)
        post, channel, who = self._post_for_admin(s, actor, cmd.post_id)
        if post.status != PostStatus.SCHEDULED.value:
            raise Refusal(f"Post #{post.id} is not scheduled ({post.status}); use /delete {post.id}.")
        post.status = PostStatus.CANCELLED.value
        s.add(post)
        self.store.channels.audit(s, channel.id, who, "cancel", f"#{post.id}")
        return [Reply(f"Scheduled post #{post.id} is cancelled; it will not be published.")]

    def _cancel_recurring(self, s: Session, actor: Actor, code: str) -> list[Reply]:
        row = self.store.schedule.recurring(s, int(code[1:])) if code[1:].isdigit() else None
        channel = self.store.channels.by_id(s, row.channel_id) if row else None
        if row is None or channel is None or not row.active:
            raise Refusal(f"There is no recurring post {code}.")
        who = self._require_admin(s, actor, channel)
        row.active = False
        s.add(row)
        self.store.channels.audit(s, channel.id, who, "cancel", code)
        return [Reply(f"Recurring post {code} is stopped.")]

    def _cmd_edit(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        post, channel, who = self._post_for_admin(s, actor, cmd.post_id)
        if post.kind in (PostKind.POLL.value, PostKind.STICKER.value):
            raise Refusal(f"A {post.kind} cannot be edited; delete it and post again.")
        if post.status not in (
            PostStatus.PUBLISHED.value,
            PostStatus.PUBLISHING.value,
            PostStatus.SCHEDULED.value,
        ):
            raise Refusal(f"Post #{post.id} is {post.status}; it cannot be edited.")
        new_text = cmd.text.strip()
        if not new_text and post.kind == PostKind.TEXT.value:
            raise Refusal("The new text is empty.")
        if len(new_text) > MAX_TEXT:
            raise Refusal(f"A post can have at most {MAX_TEXT} characters.")
        s.add(PostEdit(post_id=post.id or 0, previous_text=post.text, edited_at=self.clock()))
        post.text = new_text
        post.edited_at = self.clock()
        post.edit_count += 1
        s.add(post)
        s.flush()
        copies = 0
        if post.status != PostStatus.SCHEDULED.value:
            copies = self.store.fanout.plan_followups(s, post.id or 0, DeliveryAction.EDIT, self.clock())
        self.store.channels.audit(s, channel.id, who, "edit", f"#{post.id}")
        self._wake()
        return [
            Reply(
                f"Post #{post.id} edited; {copies} delivered cop{'y' if copies == 1 else 'ies'} "
                "will be updated, and copies still to send carry the new text."
            )
        ]

    def _cmd_delete(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        post, channel, who = self._post_for_admin(s, actor, cmd.post_id)
        if post.status == PostStatus.SCHEDULED.value:
            return self._cmd_cancel(s, actor, cmd, media)
        if post.status not in (PostStatus.PUBLISHED.value, PostStatus.PUBLISHING.value):
            raise Refusal(f"Post #{post.id} is {post.status}; there is nothing to delete.")
        post.status = PostStatus.DELETED.value
        post.deleted_at = self.clock()
        s.add(post)
        s.flush()
        skipped = self.store.fanout.skip_pending(
            s,
            post.id or 0,
            "post deleted",
            [DeliveryAction.SEND.value, DeliveryAction.EDIT.value, DeliveryAction.CLOSE_POLL.value],
        )
        copies = self.store.fanout.plan_followups(s, post.id or 0, DeliveryAction.DELETE, self.clock())
        self.store.channels.audit(s, channel.id, who, "delete", f"#{post.id}")
        self._wake()
        return [
            Reply(
                f"Post #{post.id} deleted: {copies} delivered cop{'y' if copies == 1 else 'ies'} "
                f"will be removed; {skipped} not yet sent will not be sent."
            )
        ]

    def _cmd_stats(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        self._require_admin(s, actor, channel)
        text_ = self.stats_text(s, channel)
        if actor.is_operator and self._sending_report is not None:
            text_ += "\n" + "\n".join(self._sending_report())
        return [Reply(text_)]

    def stats_text(self, s: Session, channel: Channel) -> str:
        """Aggregate statistics of a channel: counts only, never identities."""
        cid = channel.id or 0
        per_platform = self.store.followers.counts_by_platform(s, cid)
        total = sum(n for n, _ in per_platform.values())
        muted = sum(m for _, m in per_platform.values())
        parts = ", ".join(f"{p} {n}" for p, (n, _) in sorted(per_platform.items()))
        lines = [
            f"Stats for {channel.name} ({channel.handle})",
            f"Followers: {total}" + (f" ({parts})" if parts else "") + f"; muted {muted}",
        ]
        paused = self.store.followers.paused_count(s, cid)
        if paused:
            lines.append(f"Paused (blocked the bot or left): {paused}")
        mirrors = self.store.channels.mirrors(s, cid)
        if mirrors:
            lines.append(f"Mirror rooms: {len(mirrors)}")
        for post in self.store.posts.recent(s, cid, limit=5):
            lines.append(self.post_stats_line(s, post))
        return "\n".join(lines)

    def post_stats_line(self, s: Session, post: Post) -> str:
        """One post's delivery status, reactions and poll tally."""
        counts = self.store.fanout.send_counts(s, post)
        delivered, pending, failed, skipped = counts.delivered, counts.pending, counts.failed, counts.skipped
        line = f"#{post.id} {post.kind}"
        if post.status == PostStatus.DELETED.value:
            line += " (deleted)"
        line += f": delivered {delivered}, pending {pending}, failed {failed}"
        if skipped:
            line += f", skipped {skipped}"
        reasons = self.store.fanout.failure_reasons(s, post.id or 0) if failed else []
        if reasons:
            line += " [" + "; ".join(f"{r} ×{n}" for r, n in reasons) + "]"
        reactions = {
            k: n for k, n in self.store.posts.reaction_counts(s, post.id or 0).items() if is_single_emoji(k)
        }
        if reactions:
            line += "; reactions " + " ".join(f"{k} {n}" for k, n in reactions.items())
        if post.kind == PostKind.POLL.value:
            tally, voters = self.store.posts.tally(s, post.id or 0)
            options = self.store.posts.poll_options(s, post.id or 0)
            votes = ", ".join(f"{o.text} {tally.get(o.position, 0)}" for o in options)
            line += f"; votes ({voters} voters): {votes}"
        return line

    def _cmd_admins(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        self._require_admin(s, actor, channel)
        admins = self.store.channels.admins(s, channel.id or 0)
        lines = [
            f"#{a.number} {a.role} ({a.platform})" + (" — you" if a.account_index == actor.index else "")
            for a in admins
        ]
        return [
            Reply(
                f"Admins of {channel.handle} ({len(admins)}/{self.options.max_admins}):\n" + "\n".join(lines)
            )
        ]

    def _cmd_invite_admin(
        self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        if len(self.store.channels.admins(s, channel.id or 0)) >= self.options.max_admins:
            raise Refusal(f"{channel.handle} already has {self.options.max_admins} admins, the most allowed.")
        now = self.clock()
        if self.store.channels.outstanding_invites(s, channel.id or 0, now) >= self.options.max_open_invites:
            raise Refusal(
                f"{channel.handle} already has {self.options.max_open_invites} unused admin codes; "
                "a new one can be made once one of them is accepted or expires."
            )
        inviter = self.store.channels.admin_of(s, channel.id or 0, actor.index)
        code = new_invite_code()
        s.add(
            AdminInvite(
                channel_id=channel.id or 0,
                code_digest=self.sealer.code_digest(normalize_code(code)),
                created_at=now,
                expires_at=now + self.options.invite_ttl_s,
                created_by=inviter.id if inviter else None,
            )
        )
        self.store.channels.audit(s, channel.id, who, "invite-admin")
        days = round(self.options.invite_ttl_s / 86400)
        return [
            Reply(
                f"One-time admin code for {channel.handle}: {code}\nIt works once, for {days} days: "
                f"the new admin sends /accept {code} to me."
            )
        ]

    def _cmd_removeadmin(
        self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_owner(s, actor, channel)
        number = cmd.numbers[0] if cmd.numbers else 0
        target = next((a for a in self.store.channels.admins(s, channel.id or 0) if a.number == number), None)
        if target is None:
            raise Refusal(f"{channel.handle} has no admin #{number}; /admins {channel.handle} lists them.")
        if target.role == AdminRole.OWNER.value:
            raise Refusal("The owner cannot be removed.")
        revoked = self.store.channels.revoke_invites_by(s, target.id or 0)
        s.delete(target)
        self.store.channels.audit(s, channel.id, who, "removeadmin", f"#{number}")
        note = f" The {revoked} unused admin code(s) they made no longer work." if revoked else ""
        return [Reply(f"Admin #{number} removed from {channel.handle}.{note}")]

    def _cmd_mirror(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        who = self._require_admin(s, actor, channel)
        if cmd.text:
            if not actor.is_operator:
                raise Refusal("Only operators can add mirror rooms.")
            if cmd.text == "create matrix":
                # creating a room needs the Matrix adapter: handled by `_create_mirror` (async)
                raise Refusal("Mirror rooms can only be created while the Matrix adapter runs.")
            platform, chat = cmd.text.split(":", 1)
            mirrors = self.store.channels.mirrors(s, channel.id or 0)
            if any(m.platform == platform and m.chat_id == chat for m in mirrors):
                raise Refusal(f"{platform}:{chat} already mirrors {channel.handle}.")
            s.add(
                MirrorRoom(
                    channel_id=channel.id or 0, platform=platform, chat_id=chat, created_at=self.clock()
                )
            )
            self.store.channels.audit(s, channel.id, who, "mirror", platform)
            if self._on_mirror_added is not None:  # the adapter treats it as a mirror from now on
                self._on_mirror_added(platform, chat)
            return [Reply(self._mirror_added(channel, f"{platform}:{chat}"))]
        mirrors = self.store.channels.mirrors(s, channel.id or 0)
        if not mirrors:
            return [
                Reply(
                    f"{channel.handle} has no mirror rooms. Operators add them in the config "
                    '([[channels]] mirrors = ["telegram:<chat id>", "matrix:<room id>"]) or with '
                    f"/mirror {channel.handle} create matrix."
                )
            ]
        lines = [f"{m.platform}:{m.chat_id}" for m in mirrors]
        return [
            Reply(
                f"Mirror rooms of {channel.handle} (members of a room can see each other):\n"
                + "\n".join(lines)
            )
        ]

    @staticmethod
    def _mirror_added(channel: Channel, where: str) -> str:
        return (
            f"{where} now mirrors every new post of {channel.handle}. Members of a mirror room can see "
            "each other: use mirrors for public channels only."
        )

    async def _create_mirror(self, actor: Actor, cmd: Command) -> list[Reply]:
        """`/mirror <handle> create matrix`: the bot creates a read-only room and mirrors into it."""
        with self.store.unit_of_work() as s:
            channel = self._channel(s, cmd.handle)
            if not actor.is_operator:
                raise Refusal("Only operators can add mirror rooms.")
            name, description = channel.name, channel.description
        if self._mirror_factory is None:
            raise Refusal("Mirror rooms can only be created while the Matrix adapter runs.")
        try:
            room = await self._mirror_factory("matrix", name, description or f"Mirror of {name}")
        except Exception as exc:
            log.warning("creating a mirror room failed: %s", type(exc).__name__)
            raise Refusal("The homeserver refused to create the room; nothing was changed.") from exc
        with self.store.unit_of_work() as s:
            channel = self._channel(s, cmd.handle)
            s.add(
                MirrorRoom(
                    channel_id=channel.id or 0, platform="matrix", chat_id=room, created_at=self.clock()
                )
            )
            self.store.channels.audit(s, channel.id, "operator", "mirror", "matrix")
            return [Reply(self._mirror_added(channel, f"matrix:{room}"))]
