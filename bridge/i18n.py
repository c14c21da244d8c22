"""Translations: the gettext catalogs in `bridge/locale`, and the language of the person being
answered.

Messages are written in English in the code and marked for extraction: `_("...")` where the
text is used, `N_("...")` for text defined at import time (command usages and summaries, grammar
errors) and translated where it is shown with `_(text)`, `ngettext` for plurals. Placeholders are
named `{fields}` filled with `.format(...)` after translation (f-strings cannot be extracted).

The language of an answer is a context variable set where the engine handles one inbound event
(`speaking`); anything outside such a block speaks the default language (`general.language`).
Post content is never translated. `bridge/locale/<lang>/LC_MESSAGES/channelbridge.mo` is compiled
from the `.po` beside it with Babel (`pybabel compile`, see the README's developer notes).
"""

from __future__ import annotations

import gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

DOMAIN = "channelbridge"
LOCALE_DIR = Path(__file__).parent / "locale"
SOURCE_LANGUAGE = "en"  #: the language the code's messages are written in (no catalog needed)

_default = [SOURCE_LANGUAGE]
_current: ContextVar[str | None] = ContextVar("channelbridge_language", default=None)


def languages() -> tuple[str, ...]:
    """Every language the bot speaks: English, and each language with a compiled catalog."""
    found = sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
    return (SOURCE_LANGUAGE, *(lang for lang in found if lang != SOURCE_LANGUAGE))


def language_of(code: str | None) -> str | None:
    """The language we speak for a platform's language code (`fr-CA` -> `fr`), or None."""
    if not code:
        return None
    base = code.strip().lower().replace("_", "-").split("-", 1)[0]
    return base if base in languages() else None


def set_default_language(language: str) -> None:
    """Speak `language` where no person's language applies (the app sets `general.language`)."""
    if language not in languages():
        raise ValueError(f"no catalog for language {language!r}; known: {', '.join(languages())}")
    _default[0] = language


def default_language() -> str:
    """The language spoken where no person's language applies."""
    return _default[0]


def current_language() -> str:
    """The language of the person being answered (the default outside `speaking`)."""
    return _current.get() or _default[0]


@contextmanager
def speaking(language: str | None) -> Iterator[None]:
    """Translate into `language` inside the block (None: the default language)."""
    token = _current.set(language if language in languages() else None)
    try:
        yield
    finally:
        _current.reset(token)


@cache
def _translations(language: str) -> gettext.NullTranslations:
    if language == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=str(LOCALE_DIR), languages=[language])


def _(message: str) -> str:
    """`message` in the current language (itself when the catalog has no entry)."""
    return _translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for `n`, in the current language."""
    return _translations(current_language()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark `message` for extraction without translating it now: it is translated where it is
    shown, with `_(message)`."""
    return message


def language_name(language: str) -> str:
    """A language's name in itself (`français`)."""
    return {"en": "English", "fr": "français"}.get(language, language)
