"""Telegram-style HTML parse-mode validation for the local Bot API server."""

from __future__ import annotations

from html.parser import HTMLParser

#: the tags Telegram accepts with parse_mode=HTML
ALLOWED_TAGS = frozenset(
    {
        "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
        "tg-spoiler", "span", "blockquote", "tg-emoji",
    }
)  # fmt: skip


class EntityError(ValueError):
    """The text is not valid Telegram HTML; the message is Telegram's description."""


class _Parser(HTMLParser):
    """Collects the plain text and checks the tag structure like Telegram does."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Open a tag; unsupported ones are refused."""
        if tag not in ALLOWED_TAGS:
            raise EntityError(f'Unsupported start tag "{tag}"')
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        """Close the innermost tag; a mismatch is refused."""
        if not self.stack or self.stack[-1] != tag:
            raise EntityError(f'Unmatched end tag "{tag}"')
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        """Keep the text between tags."""
        self.parts.append(data)


def parse_html(text: str) -> str:
    """Return the plain text Telegram would show for `text` in HTML parse mode.

    Raises `EntityError` with Telegram's wording for unsupported or unbalanced tags.
    """
    parser = _Parser()
    parser.feed(text)
    parser.close()
    if parser.stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"')
    return "".join(parser.parts)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram counts in."""
    return len(text.encode("utf-16-le")) // 2
