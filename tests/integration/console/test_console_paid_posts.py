"""A paid post on the console (`channelbridge run`, no config but payments on): a free local
follower gets the teaser with a line saying what to send to subscribe, the operator the post."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELBRIDGE_")}
    env["CHANNELBRIDGE_GENERAL__DATA_DIR"] = str(tmp_path / "data")
    env["CHANNELBRIDGE_PAYMENTS__ENABLED"] = "true"
    env["CHANNELBRIDGE_PAYMENTS__SUPPORT"] = "@news_help"
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "run"],
        input=SCRIPT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    teaser = "[to alice] Daily News (#1): 🔒 A post for subscribers. Subscribe: 30 days for 50 Stars."
    assert teaser in lines
    assert lines[lines.index(teaser) + 1] == "  Send /subscribe news"
    assert not any("For members" in line for line in lines if line.startswith("[to alice]"))
    assert any(line.startswith("[to ") and "For members" in line for line in lines)
