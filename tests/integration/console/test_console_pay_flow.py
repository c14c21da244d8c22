"""The whole paid flow without Telegram: `channelbridge run` with the console, payments on, a
follower paying with `:pay` gets the paid post published before they paid (the back catalogue)
and the one after; a free follower does not get the paid post itself.

This needs `/subscribe` (an invoice for platforms that sell Stars) and the engine side of
pre-checkout and payment events, built in other branches of issue 13: it passes once those
are merged with the console's `:pay`.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.console.run import copies, run_console

SCRIPT = """\
/newchannel news Daily News
/price news 100
:as bob
/follow news
:as operator
/post news --paid Before paying
:sync
:as alice
:pay news
:sync
:as operator
/post news --paid After paying
/post news Free for all
:sync
"""




def test_a_console_follower_pays_and_gets_the_paid_posts(tmp_path: Path) -> None:
    out = run_console(tmp_path / "data", SCRIPT, payments=True)[0]
    assert re.search(r"\[invoice: 30 days of .* for 100 Stars — type :pay news to pay\]", out), out
    assert "[payment refused" not in out and "nothing paid" not in out, out
    assert re.search(r"\[paid 100 Stars for news: charge console-[0-9a-f]+\]", out), out
    alice = copies(out, "alice")
    assert "Daily News (#1): Before paying" in alice, out  # the back catalogue
    assert "Daily News (#2): After paying" in alice, out
    assert "Daily News (#3): Free for all" in alice, out
    bob = copies(out, "bob")
    assert "Daily News (#3): Free for all" in bob, out
    assert not any("Before paying" in c or "After paying" in c for c in bob), out
