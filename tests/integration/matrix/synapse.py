"""A throw-away Synapse homeserver on 127.0.0.1 for the Matrix integration tests.

`SynapseServer` writes a minimal offline config (see /work/shared/FIELD-NOTES.md), generates the
signing key, starts `python -m synapse.app.homeserver`, waits for `/_matrix/client/versions` and
stops the process with SIGTERM (SIGKILL if it lingers). Helpers register users through the
shared-secret admin API and lift a user's message rate limit. Only the standard library is used
so the helpers work from synchronous fixtures.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVER_NAME = "localhost"
_SHARED_SECRET = "channelbridge-test-shared-secret"


@dataclass(frozen=True)
class RegisteredUser:
    """A user created on the test homeserver."""

    user_id: str
    access_token: str
    device_id: str
    password: str


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now (bound with SO_REUSEADDR like Synapse)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config_yaml(base: Path, port: int) -> str:
    """The homeserver.yaml text (JSON is valid YAML, so no YAML library is needed)."""
    unlimited = {"per_second": 1000, "burst_count": 1000}
    config: dict[str, Any] = {
        "server_name": SERVER_NAME,
        "pid_file": str(base / "homeserver.pid"),
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(base / "homeserver.db")}},
        "media_store_path": str(base / "media"),
        "signing_key_path": str(base / "signing.key"),
        "log_config": str(base / "log.config"),
        "registration_shared_secret": _SHARED_SECRET,
        "enable_registration": False,
        "report_stats": False,
        "presence": {"enabled": False},
        "bcrypt_rounds": 4,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "url_preview_enabled": False,
        "enable_metrics": False,
        # rc_message keeps Synapse's default (0.2/s, burst 10): the 429 test needs it. Every
        # other user the tests drive is exempted per user through the admin API.
        "rc_registration": unlimited,
        "rc_login": {"address": unlimited, "account": unlimited, "failed_attempts": unlimited},
        "rc_room_creation": unlimited,
        "rc_joins": {"local": unlimited, "remote": unlimited},
        "rc_joins_per_room": unlimited,
        "rc_invites": {"per_room": unlimited, "per_user": unlimited, "per_issuer": unlimited},
        "rc_key_requests": unlimited,
        "rc_media_create": unlimited,
    }
    return json.dumps(config, indent=1)


_LOG_CONFIG = """\
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {path}
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: have the kernel SIGTERM Synapse if the test process dies without cleaning up."""
    with contextlib.suppress(Exception):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class SynapseServer:
    """A Synapse child process; use as a context manager or call `start`/`stop`."""

    def __init__(self, *, startup_timeout_s: float = 60.0) -> None:
        shm = Path("/dev/shm")
        parent = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
        self.base = Path(tempfile.mkdtemp(prefix="cb-synapse-", dir=parent))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = self.base / "homeserver.yaml"
        self._startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SynapseServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Write the config, generate keys, launch Synapse and wait until it answers."""
        (self.base / "media").mkdir()
        (self.base / "log.config").write_text(
            _LOG_CONFIG.format(path=self.base / "homeserver.log")
        )
        self.config_path.write_text(_config_yaml(self.base, self.port))
        cmd = [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)]
        subprocess.run(
            [*cmd, "--generate-keys"], check=True, capture_output=True, cwd=self.base, timeout=120
        )
        self._proc = subprocess.Popen(
            cmd,
            cwd=self.base,
            stdout=subprocess.DEVNULL,
            stderr=open(self.base / "stderr.log", "wb"),  # noqa: SIM115 - closed with the process
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        atexit.register(self.stop)  # a crashed session still stops the server
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"synapse exited early:\n{self.log_tail()}")
            versions = f"{self.url}/_matrix/client/versions"
            with contextlib.suppress(OSError), urllib.request.urlopen(versions, timeout=2):
                return
            time.sleep(0.1)
        raise RuntimeError(f"synapse did not answer within {self._startup_timeout_s}s")

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of Synapse's stderr and log file, for failure messages."""
        out = []
        for name in ("stderr.log", "homeserver.log"):
            path = self.base / name
            if path.exists():
                out.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(out)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the Synapse process has used so far; 0 when it is not running."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return 0.0
        try:
            stat = Path(f"/proc/{proc.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM the process (SIGKILL after 10 s) and remove the temp dir."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(self.base, ignore_errors=True)

    # -- HTTP helpers -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One JSON request to the homeserver; returns (HTTP status, decoded body)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def register(self, localpart: str, *, admin: bool = False) -> RegisteredUser:
        """Create a user with the shared-secret admin API; returns its id and access token."""
        status, nonce_body = self.request("GET", "/_synapse/admin/v1/register")
        assert status == 200, nonce_body
        nonce = nonce_body["nonce"]
        password = f"pw-{localpart}"
        mac = hmac.new(_SHARED_SECRET.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(),
                                 b"admin" if admin else b"notadmin"]))
        status, body = self.request(
            "POST",
            "/_synapse/admin/v1/register",
            {"nonce": nonce, "username": localpart, "password": password, "admin": admin,
             "mac": mac.hexdigest()},
        )
        assert status == 200, body
        return RegisteredUser(body["user_id"], body["access_token"], body["device_id"], password)

    def exempt_from_ratelimit(self, admin_token: str, user_id: str) -> None:
        """Lift every message rate limit for `user_id` (needs an admin's token)."""
        self.set_message_ratelimit(admin_token, user_id, 0, 0)

    def set_message_ratelimit(
        self, admin_token: str, user_id: str, per_second: float, burst_count: int
    ) -> None:
        """Override `user_id`'s message rate limit (0, 0 = exempt) with the admin API."""
        path = f"/_synapse/admin/v1/users/{urllib.parse.quote(user_id)}/override_ratelimit"
        status, body = self.request(
            "POST", path, {"messages_per_second": per_second, "burst_count": burst_count},
            token=admin_token,
        )
        assert status == 200, body

    def room_members(self, admin_token: str, room_id: str) -> list[str]:
        """The current (joined) members of a room, read with the admin API."""
        path = f"/_synapse/admin/v1/rooms/{urllib.parse.quote(room_id)}/members"
        status, body = self.request("GET", path, token=admin_token)
        assert status == 200, body
        members: list[str] = body["members"]
        return members

    def restore_default_ratelimit(self, admin_token: str, user_id: str) -> None:
        """Remove `user_id`'s rate-limit override: the server's defaults apply again."""
        path = f"/_synapse/admin/v1/users/{urllib.parse.quote(user_id)}/override_ratelimit"
        status, body = self.request("DELETE", path, token=admin_token)
        assert status == 200, body
