"""Access codes through `channelbridge run` with the console, logging at DEBUG: codes minted in
one run are redeemed in the next (once), and no code is in the log or in any file of data_dir."""

from __future__ import annotations

import re
from pathlib import Path

from bridge.engine.codes import parse_code
from tests.integration.console.run import run_console

CODE_RE = re.compile(r"CB(?:-[0-9A-Z]{5}){6}")



def _run(data_dir: Path, script: str) -> tuple[str, str]:
    return run_console(data_dir, script, payments=True, debug=True, timeout=60)


def test_codes_minted_in_one_run_are_redeemed_once_in_the_next_and_never_logged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out, log_1 = _run(data, "/newchannel news Daily News\n/price news 100\n/post news --paid Old news\n"
                            "/codes news 2 30\n:sync\n")
    codes = CODE_RE.findall(out)
    assert len(set(codes)) == 2, out

    out, log_2 = _run(data, f":as alice\n/redeem {codes[0].lower()}\n:sync\n:as bob\n/redeem {codes[0]}\n"
                            "/privacy\n:sync\n")
    assert "[bot → alice] You have access to the paid posts of Daily News (news) until" in out, out
    assert "[to alice] Daily News (#1): Old news" in out, out
    assert "[bot → bob] This code was already used." in out, out
    assert "[bot → bob] What this bot stores about you:" in out and "/paysupport" in out

    logs = log_1 + log_2
    assert "DEBUG" in logs  # the whole log, at DEBUG
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files)
    for code in codes:
        raw = parse_code(code)
        assert raw is not None
        for spelling in (code, code.lower(), code.replace("-", ""), code[3:], raw.hex()):
            assert spelling not in logs and spelling.lower() not in logs
            for path in files:
                assert spelling.encode() not in path.read_bytes(), path.name
