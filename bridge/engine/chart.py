"""`/stats <handle> chart`: a channel's figures drawn as one PNG (matplotlib, Agg, no pyplot,
so it is safe off the event loop in a worker thread).

Three panels, counts only: followers over time (the daily snapshots), reach per post over the
last 30 posts (copies delivered, failed, pending, stacked), and reactions per post. Every
label is in `LABELS`, so a translation replaces one table.
"""

from __future__ import annotations

import asyncio
import io

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bridge.commands import StatsArgs
from bridge.engine.context import Context, find_channel, require_admin
from bridge.engine.core import Actor, EngineCore
from bridge.i18n import N_, _
from bridge.ports import Reply
from bridge.store.charts import ChartData

#: the chart's size in pixels (width, height): what Telegram and Matrix show without scaling
SIZE_PX = (1000, 1200)
_DPI = 100

#: every string the chart shows, marked for translation: drawn in the admin's language
LABELS: dict[str, str] = {
    "title": N_("{name}: followers, reach and reactions"),
    "followers_title": N_("Followers over time"),
    "followers_axis": N_("followers"),
    "day_axis": N_("day (UTC)"),
    "reach_title": N_("Reach of the last {n} posts"),
    "copies_axis": N_("copies"),
    "post_axis": N_("post"),
    "delivered": N_("delivered"),
    "failed": N_("failed"),
    "pending": N_("pending"),
    "reactions_title": N_("Reactions per post"),
    "reactions_axis": N_("reactions"),
    "no_data": N_("no data yet"),
    "caption": N_("{name}: followers over time, reach and reactions of the last {n} posts (counts only)."),
}


def render_png(data: ChartData) -> bytes:
    """The chart of `data` as PNG bytes (`SIZE_PX`)."""
    fig = Figure(figsize=(SIZE_PX[0] / _DPI, SIZE_PX[1] / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    fig.suptitle(_(LABELS["title"]).format(name=data.channel_name), fontsize=14)
    followers, reach, reactions = fig.subplots(3, 1)

    followers.set_title(_(LABELS["followers_title"]))
    followers.set_ylabel(_(LABELS["followers_axis"]))
    followers.set_xlabel(_(LABELS["day_axis"]))
    if data.followers:
        days = [day for day, _ in data.followers]
        marker = "o" if len(days) <= 60 else None  # dots only while they can be told apart
        followers.plot(range(len(days)), [n for _, n in data.followers], marker=marker, color="#1f77b4")
        step = max(1, len(days) // 8)
        followers.set_xticks(range(0, len(days), step), [days[i] for i in range(0, len(days), step)])
        followers.set_ylim(bottom=0)
    else:
        _empty(followers)

    posts = data.posts
    labels = [f"#{p.post_id}" for p in posts]
    x = range(len(posts))
    reach.set_title(_(LABELS["reach_title"]).format(n=len(posts)))
    reach.set_ylabel(_(LABELS["copies_axis"]))
    reach.set_xlabel(_(LABELS["post_axis"]))
    reactions.set_title(_(LABELS["reactions_title"]))
    reactions.set_ylabel(_(LABELS["reactions_axis"]))
    reactions.set_xlabel(_(LABELS["post_axis"]))
    if posts:
        delivered = [p.delivered for p in posts]
        failed = [p.failed for p in posts]
        pending = [p.pending for p in posts]
        reach.bar(x, delivered, color="#2ca02c", label=_(LABELS["delivered"]))
        reach.bar(x, failed, bottom=delivered, color="#d62728", label=_(LABELS["failed"]))
        on_top = [d + f for d, f in zip(delivered, failed, strict=True)]
        reach.bar(x, pending, bottom=on_top, color="#ff7f0e", label=_(LABELS["pending"]))
        reach.legend(loc="upper left", fontsize=8)
        reactions.bar(x, [p.reactions for p in posts], color="#9467bd")
        for axes in (reach, reactions):
            axes.set_xticks(list(x), labels, rotation=60, fontsize=7)
    else:
        _empty(reach)
        _empty(reactions)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=_DPI)
    return out.getvalue()


def _empty(axes: Axes) -> None:
    axes.text(0.5, 0.5, _(LABELS["no_data"]), ha="center", va="center", transform=axes.transAxes)


def caption(data: ChartData) -> str:
    """The words that go with the picture."""
    return _(LABELS["caption"]).format(name=data.channel_name, n=len(data.posts))


async def stats_chart(core: EngineCore, actor: Actor, cmd: StatsArgs) -> list[Reply]:
    """`/stats <handle> chart`: the admin's check and the figures in one transaction (today's
    follower snapshot taken on demand), then the picture drawn in a worker thread."""
    with core.store.unit_of_work() as s:
        ctx = Context(core, s, actor)
        channel = find_channel(ctx, cmd.handle)
        require_admin(ctx, channel)
        assert channel.id is not None
        core.store.charts.snapshot(s, core.clock(), channel.id)
        data = ChartData(
            channel.name,
            core.store.charts.followers_over_time(s, channel.id),
            core.store.charts.last_posts(s, core.store.fanout, channel.id),
        )
    png = await asyncio.to_thread(render_png, data)
    return [Reply(caption(data), image=png)]


__all__ = ["LABELS", "SIZE_PX", "caption", "render_png", "stats_chart"]
