"""People's text made safe to count and to echo: a reaction key must be one emoji, and what the
bot shows back (names, descriptions, options, reaction keys) carries no control or bidi
characters that could hide or forge lines.

Pure functions, no I/O, no dependency beyond `unicodedata`. The emoji check follows the shape of
Unicode's emoji sequences (UTS #51) without its data files:

- a flag: two regional indicators;
- a keycap: `0-9`, `#` or `*`, an optional U+FE0F, then U+20E3;
- otherwise pictographs joined by ZWJ (U+200D), each with an optional variation selector and
  skin tone; a black flag may carry a tag sequence (subdivision flags).

A pictograph is a symbol (`So`), a code point of the emoji blocks (assigned or not, so newer
emoji pass on an older Python), or one of the few emoji Unicode files under other categories.
"""

from __future__ import annotations

import unicodedata

MAX_REACTION_BYTES = 32

_ZWJ = 0x200D
_KEYCAP = 0x20E3
_VARIATION = frozenset({0xFE0E, 0xFE0F})
_BLACK_FLAG = 0x1F3F4
_CANCEL_TAG = 0xE007F
_KEYCAP_BASES = frozenset(map(ord, "0123456789#*"))
#: emoji whose general category is not `So` (‼ ⁉ ℹ ↔-↙ ◻-◾ ⤴ ⤵ 〰 〽)
_OTHER_EMOJI = frozenset(
    [0x203C, 0x2049, 0x2139, *range(0x2194, 0x219A), *range(0x25FB, 0x25FF), 0x2934, 0x2935, 0x3030, 0x303D]
)
#: characters that reorder text or hide it: bidi embeddings, overrides, isolates and marks
_BIDI = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_LINE_BREAKS = frozenset("\u2028\u2029\x85")


def _regional(cp: int) -> bool:
    return 0x1F1E6 <= cp <= 0x1F1FF


def _skin_tone(cp: int) -> bool:
    return 0x1F3FB <= cp <= 0x1F3FF


def _tag(cp: int) -> bool:
    return 0xE0020 <= cp <= 0xE007E


def _pictograph(cp: int) -> bool:
    if 0x1F000 <= cp <= 0x1FAFF or 0x1FC00 <= cp <= 0x1FFFD:
        return not _regional(cp)
    return cp in _OTHER_EMOJI or unicodedata.category(chr(cp)) == "So"


def _element_end(cps: list[int], i: int) -> int:
    """Where one pictograph with its modifiers, starting at `i`, ends; -1 if there is none."""
    if i >= len(cps) or not _pictograph(cps[i]):
        return -1
    base = cps[i]
    i += 1
    if i < len(cps) and cps[i] in _VARIATION:
        i += 1
    if i < len(cps) and _skin_tone(cps[i]):
        i += 1
    if base == _BLACK_FLAG and i < len(cps) and _tag(cps[i]):
        while i < len(cps) and _tag(cps[i]):
            i += 1
        if i >= len(cps) or cps[i] != _CANCEL_TAG:
            return -1
        i += 1
    return i


def is_single_emoji(key: str) -> bool:
    """Whether `key` is exactly one emoji (one grapheme cluster) of at most 32 bytes in UTF-8."""
    if not key or len(key.encode("utf-8")) > MAX_REACTION_BYTES:
        return False
    cps = [ord(c) for c in key]
    if len(cps) == 2 and _regional(cps[0]) and _regional(cps[1]):
        return True
    if cps[0] in _KEYCAP_BASES:
        return cps[1:] in ([_KEYCAP], [0xFE0F, _KEYCAP])
    i = _element_end(cps, 0)
    while i != -1 and i < len(cps):
        if cps[i] != _ZWJ:
            return False
        i = _element_end(cps, i + 1)
    return i == len(cps)


def _keeps_zwj(text: str, i: int) -> bool:
    """A ZWJ stays only between two parts of an emoji sequence."""
    if i == 0 or i + 1 >= len(text):
        return False
    before, after = ord(text[i - 1]), ord(text[i + 1])
    joined_from = _pictograph(before) or before in _VARIATION or _skin_tone(before)
    return joined_from and _pictograph(after)


def clean(text: str) -> str:
    """`text` without control, format and bidi characters (newlines kept, tabs and other line
    breaks made spaces); a ZWJ inside an emoji and the tags of a subdivision flag stay."""
    out: list[str] = []
    for i, ch in enumerate(text):
        cp = ord(ch)
        if ch == "\n":
            out.append(ch)
        elif ch == "\t" or ch in _LINE_BREAKS:
            out.append(" ")
        elif cp in _BIDI:
            continue
        elif cp == _ZWJ:
            if _keeps_zwj(text, i):
                out.append(ch)
        elif _tag(cp) or cp == _CANCEL_TAG:
            if out and (ord(out[-1]) == _BLACK_FLAG or _tag(ord(out[-1]))):
                out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def one_line(text: str) -> str:
    """`clean(text)` on one line, its runs of whitespace made single spaces."""
    return " ".join(clean(text).split())


__all__ = ["MAX_REACTION_BYTES", "clean", "is_single_emoji", "one_line"]
