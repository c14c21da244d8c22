"""Running `channelbridge run` on the console as a newcomer does: a subprocess fed a script on
stdin, with only the environment a test gives it (no CHANNELBRIDGE_* of the caller)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def run_console(
    data_dir: Path, script: str, *, payments: bool = False, debug: bool = False, timeout: float = 90
) -> tuple[str, str]:
    """Run the console with `script` as its input; returns (stdout, stderr) of a clean exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELBRIDGE_")}
    env["CHANNELBRIDGE_GENERAL__DATA_DIR"] = str(data_dir)
    if debug:
        env["CHANNELBRIDGE_GENERAL__LOG_LEVEL"] = "DEBUG"
    if payments:
        env["CHANNELBRIDGE_PAYMENTS__ENABLED"] = "true"
        env["CHANNELBRIDGE_PAYMENTS__SUPPORT"] = "@news_help"
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "run"],
        input=script,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr


def copies(out: str, who: str) -> list[str]:
    """The post copies the console showed to `who`, in order."""
    return [line.split("] ", 1)[1] for line in out.splitlines() if line.startswith(f"[to {who}]")]
