"""The store: one module per aggregate, each a set of named queries returning typed rows.

`Store` is what callers hold. It owns the database (`unit_of_work()` opens a transaction; see
`bridge.store.database` for the one convention) and exposes the aggregates as attributes:

    with store.unit_of_work() as s:
        channel = store.channels.by_handle(s, "news")

- `store.channels`  channels, admins, invites, mirror rooms, the audit log  (`channels.py`)
- `store.followers` followers, subscriptions, counters, pause, forget, bulk import  (`followers.py`)
- `store.posts`     posts, polls, votes, reactions, media, delivered copies  (`posts.py`)
- `store.fanout`    planning a post's deliveries, follow-ups, figures, progress  (`fanout.py`)
- `store.outbox`    the worker's hot path: claim, context, record, leases (Core)  (`outbox.py`)
- `store.schedule`  scheduled posts, poll deadlines, recurring posts, claims  (`schedule.py`)
- `store.leases`    named leases between processes, heartbeats  (`leases.py`)
- `store.keyring`   the privacy-key record, state values, re-sealing  (`keyring.py`)
- `store.payments`  paid tiers, entitlements, the ledger of money events  (`payments.py`)
- `store.codes`     access codes (as digests) and failed redemptions  (`codes.py`)
- `store.history`   a new follower's earlier posts, link follows  (`history.py`, `copies.py`)
- `store.charts`    daily follower snapshots and the figures `/stats <handle> chart` draws  (`charts.py`)
- `store.languages` the language each person chose with /lang  (`languages.py`)
- `store.updates`   updates pushed to a webhook, recorded before acknowledged  (`updates.py`)
- `store.ops`       what operators see: queue depths, follower totals, leases, snapshots  (`ops.py`)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlmodel import Session

from bridge.models import AdminInvite, ChannelAdmin, Delivery, Follower, Post
from bridge.outcomes import Claim
from bridge.ports import Address
from bridge.privacy import Sealer
from bridge.store.channels import Channels
from bridge.store.charts import Charts
from bridge.store.codes import Codes
from bridge.store.database import Database, private_sqlite_file, sqlite_url
from bridge.store.fanout import Fanout
from bridge.store.followers import Followers
from bridge.store.history import History
from bridge.store.keyring import Keyring
from bridge.store.languages import Languages
from bridge.store.leases import Leases
from bridge.store.ops import Ops
from bridge.store.outbox import Outbox
from bridge.store.payments import AlreadyRecorded, LedgerCharge, Payments, Recorded, RevenueMonth
from bridge.store.posts import Posts
from bridge.store.rows import (
    ClaimedDelivery,
    DeliveryContext,
    DeliveryOutcome,
    Due,
    FailureReason,
    Followed,
    KeyRecord,
    PlatformCount,
    PostView,
    ProgressReport,
    ScheduleSnapshot,
    SealedRow,
    SendCounts,
    SourceRef,
    Tally,
)
from bridge.store.schedule import Schedule
from bridge.store.updates import ClaimedUpdate, Updates


class Store(Database):
    """The database and its aggregates. The few methods defined here are thin delegates kept
    for the tests' sake; product code calls the aggregates."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.channels = Channels()
        self.followers = Followers()
        self.posts = Posts()
        self.fanout = Fanout()
        self.outbox = Outbox(self.is_postgres)
        self.schedule = Schedule()
        self.leases = Leases()
        self.keyring = Keyring()
        self.payments = Payments(self.is_postgres)
        self.codes = Codes()
        self.history = History()
        self.charts = Charts()
        self.ops = Ops()
        self.updates = Updates(self.is_postgres)
        self.languages = Languages()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """`unit_of_work()` (the tests' name for it)."""
        with self.unit_of_work() as s:
            yield s

    # ---- delegates the tests call ------------------------------------------------------

    def import_followers(
        self, channel_id: int, addresses: Iterable[Address], sealer: Sealer, now: float, batch: int = 5000
    ) -> int:
        """`followers.bulk_import` in a Core transaction of its own."""
        with self.connection() as conn:
            return self.followers.bulk_import(conn, channel_id, addresses, sealer, now, batch)

    def follower_by_index(self, s: Session, account_index: str) -> Follower | None:
        """`followers.by_index`."""
        return self.followers.by_index(s, account_index)

    def follower_count(self, s: Session, channel_id: int) -> int:
        """`followers.count`."""
        return self.followers.count(s, channel_id)

    def follower_counts_by_platform(self, s: Session, channel_id: int) -> dict[str, PlatformCount]:
        """`followers.counts_by_platform`."""
        return self.followers.counts_by_platform(s, channel_id)

    def paused_count(self, s: Session, channel_id: int) -> int:
        """`followers.paused_count`."""
        return self.followers.paused_count(s, channel_id)

    def pause_follower(self, s: Session, follower_id: int) -> None:
        """`followers.pause`."""
        self.followers.pause(s, follower_id)

    def copy_by_ref_index(self, s: Session, platform: str, ref_index: str) -> Delivery | None:
        """`posts.copy_by_ref_index`."""
        return self.posts.copy_by_ref_index(s, platform, ref_index)

    def post(self, s: Session, post_id: int) -> Post | None:
        """`posts.get`."""
        return self.posts.get(s, post_id)

    def admins(self, s: Session, channel_id: int) -> list[ChannelAdmin]:
        """`channels.admins`."""
        return self.channels.admins(s, channel_id)

    def next_admin_number(self, s: Session, channel_id: int) -> int:
        """`channels.next_admin_number`."""
        return self.channels.next_admin_number(s, channel_id)

    def invite_by_digest(self, s: Session, digest: str) -> AdminInvite | None:
        """`channels.invite_by_digest`. `/accept` calls it through the Store, so a test can
        make two processes read the same code before either redeems it."""
        return self.channels.invite_by_digest(s, digest)

    def redeem_invite(self, s: Session, invite_id: int, now: float) -> Claim:
        """`channels.redeem_invite`."""
        return self.channels.redeem_invite(s, invite_id, now)

    def lease_holder(self, name: str, now: float, ttl_s: float) -> str | None:
        """`leases.holder` in a unit of work of its own."""
        with self.unit_of_work() as s:
            return self.leases.holder(s, name, now, ttl_s)


__all__ = [
    "AlreadyRecorded",
    "ClaimedDelivery",
    "ClaimedUpdate",
    "DeliveryContext",
    "DeliveryOutcome",
    "Due",
    "FailureReason",
    "Followed",
    "KeyRecord",
    "LedgerCharge",
    "PlatformCount",
    "PostView",
    "ProgressReport",
    "Recorded",
    "RevenueMonth",
    "ScheduleSnapshot",
    "SealedRow",
    "SendCounts",
    "SourceRef",
    "Store",
    "Tally",
    "private_sqlite_file",
    "sqlite_url",
]
