"""A new follower's copy of an earlier post: the post as it is now, its header marked
"earlier post" (`Content.earlier`); an open poll stays a poll they can vote in, a closed one
arrives as its results (text), since a platform's closed poll would show no votes."""

from __future__ import annotations

from dataclasses import replace

from bridge.i18n import ngettext
from bridge.ports import Content, PostKind
from bridge.store import PostView


def results_text(content: Content, view: PostView) -> str:
    """A closed poll's question and final votes per option, with percentages."""
    assert content.poll is not None
    tally = view.tally
    votes = tally.votes if tally is not None else {}
    voters = tally.voters if tally is not None else 0
    total = sum(votes.values()) or 1
    lines = [
        ngettext(
            "{question} (closed, {voters} voter)", "{question} (closed, {voters} voters)", voters
        ).format(question=content.poll.question, voters=voters)
    ]
    for position, option in enumerate(content.poll.options):
        n = votes.get(position, 0)
        lines.append(f"{position + 1}. {option} — {n} ({round(100 * n / total)}%)")
    return "\n".join(lines)


def earlier_content(content: Content, view: PostView, *, first: bool = True) -> Content:
    """The copy of `content` a new follower gets as an earlier post (`first`: the copy
    itself, not an edit or close of it)."""
    if first and content.kind is PostKind.POLL and content.poll is not None and content.poll.closed:
        return replace(content, kind=PostKind.TEXT, text=results_text(content, view), poll=None, earlier=True)
    return replace(content, earlier=True)


__all__ = ["earlier_content", "results_text"]
