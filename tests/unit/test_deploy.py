"""The service recipe in deploy/: the systemd unit passes `systemd-analyze verify` and keeps its
hardening; the Containerfile runs as a non-root user with a HEALTHCHECK on /livez; compose
runs it with PostgreSQL. (Building the image and starting the unit are not tested here.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_unit_keeps_its_hardening() -> None:
    unit = (DEPLOY / "channelbridge.service").read_text()
    for line in (
        "DynamicUser=yes",
        "StateDirectory=channelbridge",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "EnvironmentFile=/etc/channelbridge/secrets.env",
        "CapabilityBoundingSet=",
        "UMask=0077",
    ):
        assert f"\n{line}\n" in unit, line


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # the unit names the installed path; point it at this checkout's entry point to verify the rest
    binary = Path(sys.executable).with_name("channelbridge")
    unit = (DEPLOY / "channelbridge.service").read_text()
    unit = unit.replace("/opt/channelbridge/.venv/bin/channelbridge", str(binary))
    copy = tmp_path / "channelbridge.service"
    copy.write_text(unit)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in (done.stdout + done.stderr).splitlines() if "channelbridge.service" in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


def test_the_container_runs_as_non_root_with_a_livez_healthcheck() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    assert "USER 10001" in text
    assert "HEALTHCHECK" in text and "/livez" in text
    assert "-slim" in text


def test_compose_runs_the_bridge_with_postgresql() -> None:
    yaml = pytest.importorskip("yaml")
    text = (DEPLOY / "compose.yaml").read_text()
    spec = yaml.safe_load(text)
    db, bridge = spec["services"]["db"], spec["services"]["bridge"]
    assert db["image"].startswith("docker.io/library/postgres")
    assert bridge["build"]["dockerfile"] == "deploy/Containerfile"
    assert bridge["depends_on"]["db"]["condition"] == "service_healthy"
    assert all(port.startswith("127.0.0.1:") for port in bridge["ports"])  # metrics on the loopback only
    assert "no-new-privileges:true" in bridge["security_opt"] and bridge["cap_drop"] == ["ALL"]
