"""The French catalog is complete and current: every message the code marks has a French
entry with the same placeholders, nothing extracted is missing from it, and the committed
`.mo` is the compiled form of the `.po` (so CI needs no compile step)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from bridge.i18n import DOMAIN, LOCALE_DIR, N_, _, language_of, languages, ngettext, speaking

ROOT = Path(__file__).resolve().parents[2]
#: the same mapping as babel.cfg (the README's `pybabel extract -F babel.cfg`)
METHOD_MAP = [("bridge/**.py", "python"), ("adapters/**.py", "python")]
_FIELD = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)[^{}]*\}")

TRANSLATED = [lang for lang in languages() if lang != "en"]


def _extracted() -> dict[str | tuple[str, ...], str]:
    """msgid (or (singular, plural)) -> where it was found, straight from Babel's extractor."""
    found: dict[str | tuple[str, ...], str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(str(ROOT), METHOD_MAP):
        key = message if isinstance(message, str) else tuple(message)
        found.setdefault(key, f"{filename}:{lineno}")
    return found


def _po(language: str):  # type: ignore[no-untyped-def]
    with (LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as f:
        return read_po(f, locale=language)


def _key(value: object) -> object:
    return tuple(value) if isinstance(value, list | tuple) else value


def test_french_is_a_known_language() -> None:
    assert "fr" in languages() and "en" in languages()


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_extracted_message_has_a_translation(language: str) -> None:
    catalog = _po(language)
    missing = []
    for key, where in _extracted().items():
        msgid = key if isinstance(key, str) else key[0]
        entry = catalog.get(msgid)
        strings = () if entry is None else _key(entry.string)
        strings = strings if isinstance(strings, tuple) else (strings,)
        if entry is None or entry.fuzzy or not strings or not all(strings):
            missing.append(f"{where}: {msgid!r}")
    assert not missing, f"messages without a {language} entry (run the pybabel commands):\n" + "\n".join(
        missing
    )


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_catalog_has_no_message_the_code_no_longer_uses(language: str) -> None:
    used = {key if isinstance(key, str) else key[0] for key in _extracted()}
    stale = [m.id for m in _po(language) if m.id and (m.id if isinstance(m.id, str) else m.id[0]) not in used]
    assert not stale, f"obsolete entries in the {language} catalog: {stale}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_each_translation_has_the_placeholders_of_its_message(language: str) -> None:
    wrong = []
    for m in _po(language):
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        want = set().union(*(set(_FIELD.findall(i)) for i in ids))
        for s in strings:
            if set(_FIELD.findall(s)) != want:
                wrong.append(f"{ids[0]!r} -> {s!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_committed_mo_is_compiled_from_the_po(language: str) -> None:
    with (LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo").open("rb") as f:
        compiled = read_mo(f)
    source = {_key(m.id): _key(m.string) for m in _po(language) if m.id and not m.fuzzy}
    built = {_key(m.id): _key(m.string) for m in compiled if m.id}
    assert built == source, "the .mo is stale: run pybabel compile -d bridge/locale -D channelbridge"


def test_translation_follows_the_language_being_spoken() -> None:
    with speaking("fr"):
        assert _("Follow") == "Suivre"
        assert ngettext("{n} follower", "{n} followers", 2).format(n=2) == "2 abonnés"
        with speaking("en"):
            assert _("Follow") == "Follow"
    assert _("Follow") == "Follow"  # the default language outside
    assert N_("Follow") == "Follow"


def test_platform_language_codes_map_to_the_languages_spoken() -> None:
    assert language_of("fr") == "fr"
    assert language_of("fr-CA") == "fr"
    assert language_of("en-GB") == "en"
    assert language_of("de") is None
    assert language_of(None) is None
