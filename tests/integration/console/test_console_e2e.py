"""End to end through `channelbridge run` with no config: the console adapter on SQLite."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.integration.console.run import copies, run_console

SCRIPT = """\
/newchannel news Daily News
:as alice
/follow news
:as bob
!follow news
:as operator
/post news Hello   world
:photo {photo} /post news A picture
/poll news "Lunch?" "Pizza" "Sushi"
:sync
:as alice
/vote 3 1
:as bob
/vote 3 2
/vote 3 1
:react 1 👍
:as operator
/edit 1 Hello edited
/delete 2
:sync
:as bob
/mute news
:as operator
/post news while bob is muted
:sync
:as alice
/unfollow news
:as operator
/post news after alice left
:sync
/stats news
/results 3
"""


def _run(tmp_path: Path, script: str) -> str:
    return run_console(tmp_path / "data", script, timeout=60)[0]


def _copies(out: str, who: str) -> list[str]:
    return copies(out, who)


def test_console_walks_through_every_flow(tmp_path: Path) -> None:
    photo = tmp_path / "cat.jpg"
    photo.write_bytes(b"\xff\xd8\xff fake jpeg")
    out = _run(tmp_path, SCRIPT.format(photo=photo))

    for who in ("alice", "bob"):
        copies = _copies(out, who)
        assert "Daily News (#1): Hello   world" in copies
        assert any(c.startswith("Daily News (#2): [photo cat.jpg") for c in copies)
        assert any(c.startswith("Daily News (#3) poll: Lunch?") for c in copies)
        assert "edited Daily News (#1): Hello edited" in copies
        assert "deleted post #2" in copies
    assert "🔕 Daily News (#4): while bob is muted" in _copies(out, "bob")
    assert "Daily News (#4): while bob is muted" in _copies(out, "alice")
    assert not any("after alice left" in c for c in _copies(out, "alice"))
    assert "🔕 Daily News (#5): after alice left" in _copies(out, "bob")

    stats = out[out.index("Stats for Daily News") :]
    assert "Followers: 1 (console 1); muted 1" in stats
    assert re.search(
        r"#3 poll: delivered 2, pending 0, failed 0; votes \(2 voters\): Pizza 2, Sushi 0", stats
    )
    assert "#1 text: delivered 2, pending 0, failed 0; reactions 👍 1" in stats
    assert "#2 photo (deleted)" in stats
    assert "1. Pizza — 2 (100%)" in out
    # counts only: the stats and results never name a follower
    assert "alice" not in stats and "bob" not in stats


def test_console_refuses_a_non_operator_channel_and_keeps_going(tmp_path: Path) -> None:
    out = _run(
        tmp_path, ":as mallory\n/newchannel evil Evil\n/post news x\n/follow\n:as operator\n/channels\n"
    )
    assert "Only operators can create channels." in out
    assert "There is no channel 'news'" in out
    assert "Usage: /follow <handle>" in out
    assert "There are no channels yet." in out


def test_state_survives_a_restart(tmp_path: Path) -> None:
    _run(tmp_path, "/newchannel news Daily News\n:as alice\n/follow news\n")
    out = _run(tmp_path, "/post news after restart\n:sync\n")
    assert "[to alice] Daily News (#1): after restart" in out


def test_sigterm_stops_cleanly_and_loses_nothing(tmp_path: Path) -> None:
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELBRIDGE_")}
    env["CHANNELBRIDGE_GENERAL__DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "run"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(
        "/newchannel news Daily News\n:as alice\n/follow news\n:as operator\n/post news before the stop\n"
    )
    proc.stdin.flush()
    deadline = time.monotonic() + 20
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if line.startswith("[to alice]"):
            break
    assert any("before the stop" in line for line in seen), seen
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    out = _run(tmp_path, "/stats news\n")
    assert "Followers: 1" in out
    assert "delivered 1, pending 0, failed 0" in out
