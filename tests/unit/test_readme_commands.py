"""The README's command tables are the registry's: a command added, removed, or with a changed
usage, summary or audience fails here until the README says the same.

Regenerate the tables with `python tests/unit/test_readme_commands.py` (it rewrites the block
between the two markers in README.md).
"""

from __future__ import annotations

from pathlib import Path

from bridge.commands import COMMANDS, Audience

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = "<!-- command tables: generated from the registry (tests/unit/test_readme_commands.py) -->"
END = "<!-- end of command tables -->"
_TITLES = {
    Audience.FOLLOWER: "**Followers** (anyone talking to the bot)",
    Audience.ADMIN: (
        "**Admins** (of the channel named in the command; operators may do everything everywhere)"
    ),
    Audience.OPERATOR: "**Operators** (listed in the config)",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def expected_tables() -> str:
    """The Markdown the registry implies: one table per audience, commands in help order."""
    parts: list[str] = []
    for audience in Audience:
        specs = [spec for spec in COMMANDS.values() if spec.audience is audience]
        if not specs:
            continue
        rows = [f"| `{_cell(spec.usage)}` | {_cell(spec.summary)} |" for spec in specs]
        parts.append("\n".join([_TITLES[audience], "", "| command | what it does |", "|---|---|", *rows]))
    return "\n\n".join(parts)


def readme_tables(text: str) -> str:
    """The block between the markers in the README."""
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "the README lacks the command-table markers"
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def test_readme_command_tables_match_the_registry() -> None:
    assert readme_tables(README.read_text(encoding="utf-8")) == expected_tables(), (
        "the README's command tables differ from bridge.commands.COMMANDS; "
        "run `python tests/unit/test_readme_commands.py` to regenerate them"
    )


def test_every_command_appears_once_in_the_readme_tables() -> None:
    block = readme_tables(README.read_text(encoding="utf-8"))
    for spec in COMMANDS.values():
        assert block.count(f"| `{_cell(spec.usage)}` |") == 1, spec.name


if __name__ == "__main__":
    text = README.read_text(encoding="utf-8")
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    README.write_text(f"{before}{BEGIN}\n\n{expected_tables()}\n\n{END}{after}", encoding="utf-8")
