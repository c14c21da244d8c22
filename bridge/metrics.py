"""Prometheus metrics: one registry per process, what the instruments count, and their labels.

No label ever carries an identity. Every label value comes from a closed set the code owns:
platform names (the plug-ins'), lanes (`copy`, `reply`, `notice`), outcomes (the enums below),
429 scopes (`bridge.flood.Scope`) and command names from the registry (`bridge.commands`;
anything else a person typed is `unknown`).

Counters and histograms are moved by the code that sees the event (the delivery worker, the
app); gauges are read at scrape time from a `GaugeSource` (`bridge.status` reads the database
and flood control), so they cost nothing between scrapes.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bridge.commands import COMMAND_PREFIXES, canonical_name

#: the content type of `render()`
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: the label of a command that is not in the registry (never the text itself)
UNKNOWN_COMMAND = "unknown"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PUBLISH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class SendOutcome(enum.StrEnum):
    """What became of one send attempt (a post copy, a reply or a notice)."""

    DELIVERED = "delivered"  #: the platform accepted it
    FAILED = "failed"  #: given up for good
    SKIPPED = "skipped"  #: not sent on purpose (post deleted, follower gone)
    RETRIED = "retried"  #: put back to wait (a 429, a transient error, a busy chat)


class CommandOutcome(enum.StrEnum):
    """What became of one command."""

    OK = "ok"  #: applied (its answer may still say "nothing to do")
    REFUSED = "refused"  #: refused with a reason; nothing changed
    MALFORMED = "malformed"  #: answered with the command's usage
    ERROR = "error"  #: failed on our side; nothing changed
    THROTTLED = "throttled"  #: ignored: the sender was over their share


def command_label(text: str) -> str:
    """The registry's name of the command `text` starts with, or `unknown`: a label made from
    what someone typed would let them fill the metrics with anything, identities included."""
    stripped = text.lstrip()
    if not stripped.startswith(COMMAND_PREFIXES):
        return UNKNOWN_COMMAND
    word = stripped[1:].split(maxsplit=1)[0] if len(stripped) > 1 else ""
    return canonical_name(word) or UNKNOWN_COMMAND


@dataclass(frozen=True)
class Gauges:
    """The gauges' values at one scrape."""

    queue_depth: dict[tuple[str, str], int] = field(default_factory=dict)  #: (platform, lane) -> rows
    send_rate: dict[str, tuple[float, float]] = field(default_factory=dict)  #: platform -> (rate, ceiling)
    followers: dict[str, int] = field(default_factory=dict)  #: platform -> active subscriptions
    scheduled_due: int = 0
    oldest_queued_s: float = 0.0  #: age of the oldest row still waiting (0: none)


#: computes the gauges at scrape time (raises when the database is away: the scrape then
#: reports `channelbridge_gauges_ok 0` and the counters)
GaugeSource = Callable[[], Gauges]


class _GaugeCollector(Collector):
    """Reads the gauges from the source at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """One family per gauge; `channelbridge_gauges_ok` says whether the source answered."""
        source = self._metrics.gauge_source
        started = time.perf_counter()
        try:
            values = source() if source is not None else Gauges()
            ok = 1.0
        except Exception:
            values, ok = Gauges(), 0.0
        self._metrics.last_gauge_s = time.perf_counter() - started
        depth = GaugeMetricFamily(
            "channelbridge_queue_depth",
            "Rows waiting to be sent, by platform and lane",
            labels=["platform", "lane"],
        )
        for (platform, lane), count in sorted(values.queue_depth.items()):
            depth.add_metric([platform, lane], count)
        rate = GaugeMetricFamily(
            "channelbridge_send_rate", "Current adaptive send rate (messages/s)", labels=["platform"]
        )
        ceiling = GaugeMetricFamily(
            "channelbridge_send_rate_ceiling",
            "Configured send rate ceiling (messages/s)",
            labels=["platform"],
        )
        for platform, (current, top) in sorted(values.send_rate.items()):
            rate.add_metric([platform], current)
            ceiling.add_metric([platform], top)
        followers = GaugeMetricFamily(
            "channelbridge_followers", "Active subscriptions, all channels, by platform", labels=["platform"]
        )
        for platform, count in sorted(values.followers.items()):
            followers.add_metric([platform], count)
        yield depth
        yield rate
        yield ceiling
        yield followers
        yield GaugeMetricFamily(
            "channelbridge_scheduled_posts_due",
            "Scheduled posts due but not published",
            value=values.scheduled_due,
        )
        yield GaugeMetricFamily(
            "channelbridge_oldest_queued_seconds",
            "Age of the oldest row still waiting to be sent",
            value=values.oldest_queued_s,
        )
        yield GaugeMetricFamily(
            "channelbridge_gauges_ok", "1 when the gauges could be read from the database", value=ok
        )


class Metrics:
    """The process's instruments, in a registry of their own (tests build one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        #: reads the gauges at scrape time (set by the app)
        self.gauge_source: GaugeSource | None = None
        #: how long the last gauge read took (seconds)
        self.last_gauge_s = 0.0
        self.deliveries = Counter(
            "channelbridge_deliveries",
            "Send attempts by platform, lane (copy, reply, notice) and outcome",
            ["platform", "lane", "outcome"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "channelbridge_rate_limited",
            "429s by platform and the scope flood control inferred (chat, global)",
            ["platform", "scope"],
            registry=self.registry,
        )
        self.commands = Counter(
            "channelbridge_commands",
            "Commands by registry name (unknown for anything else) and outcome",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.send_latency = Histogram(
            "channelbridge_send_seconds",
            "Time one platform call took (send, edit, delete, reply)",
            ["platform"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.publish_to_first_send = Histogram(
            "channelbridge_publish_to_first_send_seconds",
            "From a post's publication to its first delivered copy",
            buckets=_PUBLISH_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_GaugeCollector(self))
        # labelled children, kept: `labels()` costs a lock and a lookup on every send (the label
        # sets are closed, so these stay small)
        self._delivery_children: dict[tuple[str, str, SendOutcome], Any] = {}
        self._latency_children: dict[str, Any] = {}

    def delivery(self, platform: str, lane: str, outcome: SendOutcome) -> None:
        """Count one send attempt's outcome."""
        key = (platform, lane, outcome)
        child = self._delivery_children.get(key)
        if child is None:
            child = self._delivery_children[key] = self.deliveries.labels(platform, lane, outcome.value)
        child.inc()

    def send_time(self, platform: str, seconds: float) -> None:
        """Observe how long one platform call took."""
        child = self._latency_children.get(platform)
        if child is None:
            child = self._latency_children[platform] = self.send_latency.labels(platform)
        child.observe(seconds)

    def throttled_429(self, platform: str, scope: str) -> None:
        """Count one 429 with its inferred scope."""
        self.rate_limited.labels(platform, scope).inc()

    def command(self, text: str, outcome: CommandOutcome) -> None:
        """Count one command, named by the registry (see `command_label`)."""
        self.commands.labels(command_label(text), outcome.value).inc()

    def render(self) -> bytes:
        """The text exposition of every instrument."""
        return generate_latest(self.registry)


__all__ = [
    "CONTENT_TYPE",
    "UNKNOWN_COMMAND",
    "CommandOutcome",
    "GaugeSource",
    "Gauges",
    "Metrics",
    "SendOutcome",
    "command_label",
]
