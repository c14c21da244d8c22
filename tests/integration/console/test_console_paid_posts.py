"""A paid post on the console (`channelbridge run`, no config but payments on): a free local
follower gets the teaser with a line saying what to send to subscribe, the operator the post."""

from __future__ import annotations

from pathlib import Path

from tests.integration.console.run import run_console

SCRIPT = """\
/newchannel news Daily News
/price news 50
/follow news
:as alice
/follow news
:as operator
/post news --paid For members
:sync
"""


def test_a_free_console_follower_gets_the_teaser_with_what_to_send(tmp_path: Path) -> None:
    out, _ = run_console(tmp_path / "data", SCRIPT, payments=True, timeout=60)
    lines = out.splitlines()
    teaser = "[to alice] Daily News (#1): 🔒 A post for subscribers. Subscribe: 30 days for 50 Stars."
    assert teaser in lines
    assert lines[lines.index(teaser) + 1] == "  Send /subscribe news"
    assert not any("For members" in line for line in lines if line.startswith("[to alice]"))
    assert any(line.startswith("[to ") and "For members" in line for line in lines)
