"""`/privacy` and the README's "Privacy model" say the same facts, from `bridge.privacy_facts`:
a fact changed in one place only fails here.

Regenerate the README block with `python tests/unit/test_privacy_facts.py` (it rewrites the
block between the two markers in README.md).
"""

from __future__ import annotations

from pathlib import Path

from bridge.engine import EngineOptions
from bridge.privacy_facts import FACTS, PAYSUPPORT, readme_block

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = "<!-- privacy facts: generated from bridge/privacy_facts.py (tests/unit/test_privacy_facts.py) -->"
END = "<!-- end of privacy facts -->"


def readme_facts(text: str) -> str:
    """The block between the markers in the README."""
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "the README lacks the privacy-fact markers"
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def test_readme_privacy_facts_match_the_module() -> None:
    block = readme_facts(README.read_text(encoding="utf-8"))
    assert block == readme_block(), (
        "the README's privacy facts differ from bridge.privacy_facts.FACTS; "
        "run `python tests/unit/test_privacy_facts.py` to regenerate them"
    )


def test_the_facts_sit_in_the_privacy_section() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Privacy model\n", 1)[1].split("\n## ", 1)[0]
    assert BEGIN in section and END in section


def test_each_fact_is_one_sentence_and_names_what_the_issue_asks() -> None:
    for fact in FACTS:
        assert fact.text.endswith(".") and fact.text.count(". ") == 0, fact.topic
        assert fact.text[0].isupper() or fact.text.startswith("/"), fact.topic
    everything = " ".join(f.text for f in FACTS)
    for needed in ("sealed", "blind index", "followers", "admins", "Posts", "never attributed",
                   "ledger", "payer sealed", "digests", "Log lines", "/forgetme", "key"):
        assert needed in everything, needed


async def test_privacy_answers_anyone_with_every_fact(store_url: str) -> None:
    from tests.support import OPERATOR, build, person  # here: the file also runs as a script

    h = build(store_url)
    try:
        for who in (person(1), OPERATOR):
            answer = await h.say(who, "/privacy")
            assert answer.startswith("What this bot stores about you:")
            for fact in FACTS:
                assert f"- {fact.text}" in answer
            assert "/paysupport" not in answer
    finally:
        h.store.dispose()


async def test_privacy_points_to_paysupport_when_payments_are_on(store_url: str) -> None:
    from tests.support import build, person

    h = build(store_url, options=EngineOptions(payments_enabled=True, payments_support="@help"))
    try:
        answer = await h.say(person(1), "/privacy")
        assert answer.endswith(PAYSUPPORT)
        assert "@help" in await h.say(person(1), "/paysupport")
    finally:
        h.store.dispose()


if __name__ == "__main__":
    text = README.read_text(encoding="utf-8")
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    README.write_text(f"{before}{BEGIN}\n\n{readme_block()}\n\n{END}{after}", encoding="utf-8")
