"""A paid post's teaser: the one-line copy a follower without access gets instead of the post.

Adapters render it like a text post (the channel and post header, then the line), so it names
the channel and the post; the line says the post is for subscribers and, while the channel's
tier is on sale, its price with a Subscribe button (`/subscribe <handle>`); once sales ended it
says so, without a button. A teaser is never edited, deleted or closed afterwards.
"""

from __future__ import annotations

from bridge.i18n import _
from bridge.ports import Button, Content, PostKind
from bridge.store import PostView

#: the period a tier sells (Telegram's only subscription period)
_PERIOD_DAYS = 30


def teaser_text(view: PostView) -> str:
    """The teaser's one line (after the post's header, which adapters add)."""
    line = _("🔒 A post for subscribers.")
    if view.price is None:
        return line + _(" Subscriptions are not on sale now.")
    return line + _(
        " Subscribe: {PERIOD_DAYS} days for {price} Stars."
    ).format(PERIOD_DAYS=_PERIOD_DAYS, price=view.price)


def teaser_content(view: PostView) -> Content:
    """The teaser copy of a paid post (text only, with the Subscribe button while on sale)."""
    content = view.content
    buttons = () if view.price is None else (Button(_(
        "Subscribe"
    ), f"/subscribe {content.channel_handle}"),)
    return Content(
        post_id=content.post_id,
        kind=PostKind.TEXT,
        channel_handle=content.channel_handle,
        channel_name=content.channel_name,
        text=teaser_text(view),
        buttons=buttons,
    )


__all__ = ["teaser_content", "teaser_text"]
