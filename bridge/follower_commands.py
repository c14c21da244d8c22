"""Follower commands: find, follow, mute and leave channels, vote, see results, be forgotten."""

from __future__ import annotations

from sqlmodel import Session

from bridge.commands import Audience, Command, help_text
from bridge.engine_base import Actor, EngineBase, Refusal, followers_text, normalize_code
from bridge.models import AdminRole
from bridge.ports import (
    Button,
    InboundMedia,
    PostKind,
    Reply,
)


class FollowerCommands(EngineBase):
    """The commands anyone may send (`Audience.FOLLOWER`)."""

    def _cmd_help(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        audiences = {Audience.FOLLOWER}
        if self._is_admin_anywhere(s, actor):
            audiences.add(Audience.ADMIN)
        if actor.is_operator:
            audiences.add(Audience.OPERATOR)
        return [Reply(help_text(audiences))]

    def _cmd_start(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        intro = (
            "Welcome to channelbridge: private one-way channels. Nobody can see who else follows, "
            "and admins only see counts. Send /channels to find channels, /help for everything."
        )
        if cmd.handle:
            return [Reply(intro), *self._cmd_follow(s, actor, cmd, media)]
        return [Reply(intro)]

    def _cmd_channels(
        self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        channels = self.store.channels.search(s, cmd.query.strip())
        if not channels:
            return [Reply("No channels found." if cmd.query else "There are no channels yet.")]
        lines, buttons = [], []
        for channel in channels:
            assert channel.id is not None
            count = self.store.followers.count(s, channel.id)
            lines.append(f"{channel.handle} — {channel.name} ({followers_text(count)})")
            buttons.append(Button(f"Follow {channel.handle}", f"/follow {channel.handle}"))
        return [Reply("Channels:\n" + "\n".join(lines), buttons=tuple(buttons[:10]))]

    def _cmd_info(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        assert channel.id is not None
        count = self.store.followers.count(s, channel.id)
        follower = self.store.followers.by_index(s, actor.index)
        sub = None
        if follower and follower.id:
            sub = self.store.followers.subscription(s, follower.id, channel.id)
        state = "You do not follow it."
        buttons = [Button("Follow", f"/follow {channel.handle}")]
        if sub is not None:
            state = "You follow it" + (" (muted)." if sub.muted else ".")
            buttons = [
                Button("Unfollow", f"/unfollow {channel.handle}"),
                Button(
                    "Unmute" if sub.muted else "Mute",
                    f"/{'unmute' if sub.muted else 'mute'} {channel.handle}",
                ),
            ]
        text = f"{channel.name} ({channel.handle}) — {followers_text(count)}"
        if channel.description:
            text += f"\n{channel.description}"
        return [Reply(f"{text}\n{state}", buttons=tuple(buttons))]

    def _cmd_follow(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        channel = self._channel(s, cmd.handle)
        assert channel.id is not None
        follower = self._follower(s, actor, create=True)
        assert follower is not None and follower.id is not None
        if not self.store.followers.subscribe(s, follower, channel.id, self.clock()):
            return [Reply(f"You already follow {channel.name}.")]
        return [
            Reply(
                f"You now follow {channel.name}. Its posts will arrive here; nobody else can see "
                f"that you follow it. /mute {channel.handle} silences them, "
                f"/unfollow {channel.handle} stops them.",
                buttons=(
                    Button("Mute", f"/mute {channel.handle}"),
                    Button("Unfollow", f"/unfollow {channel.handle}"),
                ),
            )
        ]

    def _cmd_unfollow(
        self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        sub, channel = self._subscription(s, actor, cmd)
        self.store.followers.unsubscribe(s, sub, actor.address.platform)
        return [Reply(f"You no longer follow {channel.name}. Nothing more will arrive from it.")]

    def _cmd_mute(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        sub, channel = self._subscription(s, actor, cmd)
        self.store.followers.set_muted(s, sub, actor.address.platform, True)
        return [Reply(f"{channel.name} is muted: posts still arrive, without notifications.")]

    def _cmd_unmute(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        sub, channel = self._subscription(s, actor, cmd)
        self.store.followers.set_muted(s, sub, actor.address.platform, False)
        return [Reply(f"{channel.name} is unmuted.")]

    def _cmd_following(
        self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        follower = self.store.followers.by_index(s, actor.index)
        subs = self.store.followers.subscriptions_of(s, follower.id) if follower and follower.id else []
        if not subs:
            return [Reply("You follow no channels. Send /channels to find some.")]
        lines = [
            f"{channel.handle} — {channel.name}{' (muted)' if sub.muted else ''}" for sub, channel in subs
        ]
        return [Reply("You follow:\n" + "\n".join(lines))]

    def _cmd_vote(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        post, options = self._poll_for_voting(s, cmd.post_id, actor)
        bad = [n for n in cmd.numbers if not 1 <= n <= len(options)]
        if bad:
            raise Refusal(f"Poll #{post.id} has options 1 to {len(options)}.")
        if len(set(cmd.numbers)) > 1 and not post.poll_multi:
            raise Refusal(f"Poll #{post.id} allows one choice.")
        self.store.posts.set_votes(s, post.id or 0, actor.index, [n - 1 for n in cmd.numbers])
        chosen = ", ".join(options[n - 1].text for n in sorted(set(cmd.numbers)))
        return [
            Reply(f"Your vote on #{post.id} is recorded: {chosen}. You can change it until the poll closes.")
        ]

    def _cmd_results(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        post = self.store.posts.get(s, cmd.post_id or 0)
        if (
            post is None
            or post.kind != PostKind.POLL.value
            or post.published_at is None
            or not self._may_see(s, actor, post)
        ):
            raise Refusal(f"There is no poll #{cmd.post_id} in a channel you follow.")
        return [Reply(self._results_text(s, post))]

    def _cmd_forgetme(
        self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None
    ) -> list[Reply]:
        follower = self.store.followers.by_index(s, actor.index)
        if follower is not None:
            self.store.followers.forget(s, follower)
        else:
            self.store.followers.forget_voter(s, actor.index)
        note = ""
        if self.store.channels.administered_by(s, actor.index):
            note = " Your admin roles remain; an owner can remove them with /removeadmin."
        return [Reply("Done: your follows, votes, reactions and delivery records are erased." + note)]

    def _cmd_accept(self, s: Session, actor: Actor, cmd: Command, media: InboundMedia | None) -> list[Reply]:
        wait = self._accept_blocked_for(actor)
        if wait > 0:
            raise Refusal(
                f"Too many wrong codes; try again in {max(1, round(wait / 60))} min. "
                "Ask the admin who invited you to check the code."
            )
        invite = self.store.invite_by_digest(s, self.sealer.code_digest(normalize_code(cmd.code or "")))
        if invite is None or invite.used_at is not None:
            self._accept_failed(actor)
            raise Refusal("That code is not valid (or was already used).")
        if invite.expires_at <= self.clock():
            self._accept_failed(actor)
            raise Refusal("That code has expired; ask an admin for a new one.")
        channel = self.store.channels.by_id(s, invite.channel_id)
        if channel is None or channel.deleted_at is not None:
            raise Refusal("That channel no longer exists.")
        if self.store.channels.admin_of(s, channel.id or 0, actor.index) is not None:
            raise Refusal(f"You are already an admin of {channel.handle}.")
        if not self.store.channels.redeem_invite(s, invite.id or 0, self.clock()):
            raise Refusal("That code is not valid (or was already used).")
        number = self.store.channels.next_admin_number(s, channel.id or 0)  # queues admissions to the channel
        if len(self.store.channels.admins(s, channel.id or 0)) >= self.options.max_admins:
            raise Refusal(f"{channel.handle} already has {self.options.max_admins} admins, the most allowed.")
        self._add_admin(s, channel.id or 0, number, AdminRole.ADMIN, actor.address)
        self.store.channels.audit(s, channel.id, f"admin #{number}", "accept")
        return [Reply(f"You are now admin #{number} of {channel.name}. Send /help for admin commands.")]
