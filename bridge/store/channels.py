"""Channels and what hangs off them: admins, admin invites, mirror rooms, the audit log."""

from __future__ import annotations

import time

from sqlalchemy import text
from sqlmodel import Session, col, func, select

from bridge.models import AdminInvite, AdminRole, AuditEntry, Channel, ChannelAdmin, MirrorRoom
from bridge.outcomes import Claim


class Channels:
    """Named queries on channels, admins, invites and mirrors (the caller's session)."""

    def by_handle(self, s: Session, handle: str) -> Channel | None:
        """A live channel by its handle."""
        return s.exec(
            select(Channel).where(Channel.handle == handle, col(Channel.deleted_at).is_(None))
        ).first()

    def by_id(self, s: Session, channel_id: int) -> Channel | None:
        """A channel by id (deleted ones included)."""
        return s.get(Channel, channel_id)

    def handle_taken(self, s: Session, handle: str) -> bool:
        """Whether any channel, even a deleted one, ever had this handle."""
        return s.exec(select(Channel.id).where(Channel.handle == handle)).first() is not None

    def search(self, s: Session, query: str, limit: int = 20) -> list[Channel]:
        """Public live channels whose handle or name contains `query` (taken literally: `%` and
        `_` are escaped)."""
        stmt = select(Channel).where(col(Channel.deleted_at).is_(None), col(Channel.public).is_(True))
        if query:
            needle = query.lower()
            stmt = stmt.where(
                func.lower(Channel.handle).contains(needle, autoescape=True)
                | func.lower(Channel.name).contains(needle, autoescape=True)
            )
        return list(s.exec(stmt.order_by(col(Channel.handle)).limit(limit)))

    # ---- mirrors -------------------------------------------------------------------------

    def mirrors(self, s: Session, channel_id: int) -> list[MirrorRoom]:
        """The mirror rooms of a channel."""
        return list(s.exec(select(MirrorRoom).where(MirrorRoom.channel_id == channel_id)))

    def mirror_chats_of(self, s: Session, platform: str) -> list[str]:
        """Chat ids of every mirror room on a platform (live channels)."""
        rows = s.exec(
            select(MirrorRoom.chat_id)
            .join(Channel, col(Channel.id) == col(MirrorRoom.channel_id))
            .where(MirrorRoom.platform == platform, col(Channel.deleted_at).is_(None))
        ).all()
        return sorted(set(rows))

    # ---- admins --------------------------------------------------------------------------

    def admin_of(self, s: Session, channel_id: int, account_index: str) -> ChannelAdmin | None:
        """The admin row of that account in that channel, if any."""
        return s.exec(
            select(ChannelAdmin).where(
                ChannelAdmin.channel_id == channel_id, ChannelAdmin.account_index == account_index
            )
        ).first()

    def admins(self, s: Session, channel_id: int) -> list[ChannelAdmin]:
        """A channel's admins by number."""
        return list(
            s.exec(
                select(ChannelAdmin)
                .where(ChannelAdmin.channel_id == channel_id)
                .order_by(col(ChannelAdmin.number))
            )
        )

    def administered_by(self, s: Session, account_index: str) -> list[Channel]:
        """Live channels where the account is an admin."""
        return list(
            s.exec(
                select(Channel)
                .join(ChannelAdmin, col(ChannelAdmin.channel_id) == col(Channel.id))
                .where(ChannelAdmin.account_index == account_index)
                .where(col(Channel.deleted_at).is_(None))
                .order_by(col(Channel.handle))
            )
        )

    def owner(self, s: Session, channel_id: int) -> ChannelAdmin | None:
        """The owner's admin row (channels declared in config may have none)."""
        return s.exec(
            select(ChannelAdmin).where(
                ChannelAdmin.channel_id == channel_id, ChannelAdmin.role == AdminRole.OWNER.value
            )
        ).first()

    def next_admin_number(self, s: Session, channel_id: int) -> int:
        """Hand out a channel's next admin number (never one used before). On PostgreSQL this
        locks the channel row until the transaction ends, so admissions to one channel queue."""
        number = (
            s.connection()
            .execute(
                text(
                    "UPDATE channel SET last_admin_number = last_admin_number + 1 WHERE id = :id"
                    " RETURNING last_admin_number"
                ),
                {"id": channel_id},
            )
            .scalar_one()
        )
        return int(number)

    # ---- invites -------------------------------------------------------------------------

    def invite_by_digest(self, s: Session, digest: str) -> AdminInvite | None:
        """An admin invite by the keyed digest of its code."""
        return s.exec(select(AdminInvite).where(AdminInvite.code_digest == digest)).first()

    def outstanding_invites(self, s: Session, channel_id: int, now: float) -> int:
        """Invites of a channel neither used nor expired."""
        return s.exec(
            select(func.count())
            .select_from(AdminInvite)
            .where(
                AdminInvite.channel_id == channel_id,
                col(AdminInvite.used_at).is_(None),
                AdminInvite.expires_at > now,
            )
        ).one()

    def revoke_invites_by(self, s: Session, admin_id: int) -> int:
        """Delete the unused invites an admin made (they are being removed); returns how many."""
        result = s.connection().execute(
            text("DELETE FROM admininvite WHERE created_by = :a AND used_at IS NULL"), {"a": admin_id}
        )
        return result.rowcount or 0

    def redeem_invite(self, s: Session, invite_id: int, now: float) -> Claim:
        """Mark an invite used, atomically: WON for exactly one caller, however many processes
        race for the same code (the row lock makes the loser see `used_at` set)."""
        result = s.connection().execute(
            text("UPDATE admininvite SET used_at = :now WHERE id = :id AND used_at IS NULL"),
            {"id": invite_id, "now": now},
        )
        return Claim.of(result.rowcount)

    # ---- audit ---------------------------------------------------------------------------

    def audit(self, s: Session, channel_id: int | None, actor: str, action: str, detail: str = "") -> None:
        """Append to the admin audit log."""
        s.add(AuditEntry(channel_id=channel_id, actor=actor, action=action, detail=detail, at=time.time()))


__all__ = ["Channels"]
