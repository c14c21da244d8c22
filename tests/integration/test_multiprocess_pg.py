"""Three `channelbridge` processes on one PostgreSQL database: exactly-once fan-out through a
kill, inbound fail-over, and a combined send rate within the platform budget."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bridge.engine import ChannelEngine
from bridge.ports import Address
from bridge.privacy import Sealer, decode_key, generate_key
from bridge.store import Store
from tests.pg_node import SPOOL_RATE

pytestmark = [pytest.mark.postgres, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
FOLLOWERS = 5000
CONCURRENCY = 8


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _populate(url: str, key: str) -> None:
    """The channel and 5,000 followers, imported in bulk."""
    store = Store(url)
    ChannelEngine(store, Sealer(decode_key(key))).ensure_channel("news", "News", "", True, [])
    addresses = (Address("spool", f"f{n}") for n in range(FOLLOWERS))
    store.import_followers(1, addresses, Sealer(decode_key(key)), time.time())
    store.dispose()


def _busiest_second(times: list[float]) -> int:
    """The most events in any one-second window."""
    times = sorted(times)
    worst, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        worst = max(worst, end - start + 1)
    return worst


def _configure(pg_url: str, tmp_path: Path) -> tuple[str, Path, dict[str, str]]:
    """A config for three processes on `pg_url`, the schema migrated; (key, config, env)."""
    key = generate_key()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[general]\ndata_dir = "{tmp_path / "data"}"\nlog_level = "WARNING"\n'
        f'[database]\nurl = "{pg_url}"\n[privacy]\nkey = "{key}"\n'
        f"[console]\nenabled = false\n"
        f"[delivery]\nconcurrency = {CONCURRENCY}\nbatch_size = 100\nlease_s = 3.0\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELBRIDGE_")}
    upgrade = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "db", "upgrade", "--config", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert "up to date" in upgrade.stdout
    return key, config, env


def _start_nodes(config: Path, spool: Path, env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    spool.mkdir()
    (spool / "inbox.txt").write_text("")
    return {
        tag: subprocess.Popen(
            [sys.executable, "-m", "tests.pg_node", str(config), str(spool), tag], cwd=ROOT, env=env
        )
        for tag in ("a", "b", "c")
    }


def test_three_processes_share_one_database(pg_url: str, tmp_path: Path) -> None:
    key, config, env = _configure(pg_url, tmp_path)
    _populate(pg_url, key)
    spool = tmp_path / "spool"
    nodes = _start_nodes(config, spool, env)
    first_leader: str | None = None
    try:
        _wait(lambda: len(_lines(spool / "nodes.log")) == 3, 30, "three processes")
        owners = {line.split()[1]: line.split()[0] for line in _lines(spool / "nodes.log")}
        store = Store(pg_url)

        def leader() -> str | None:
            holder = store.lease_holder("inbound:spool", time.time(), 4.0)
            return owners.get(holder) if holder else None

        _wait(lambda: leader() is not None, 20, "an inbound leader")
        _wait(lambda: _count_members(store) == 3, 20, "three heartbeats")
        first_leader = leader()

        with (spool / "inbox.txt").open("a") as inbox:
            inbox.write("operator /post news hello from three processes\n")
        _wait(lambda: len(_lines(spool / "sent.log")) >= FOLLOWERS // 4, 60, "the fan-out to start")
        assert first_leader is not None
        victim = nodes[first_leader]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        sent_at_kill = len(_lines(spool / "sent.log"))
        assert sent_at_kill < FOLLOWERS, "the kill must land mid fan-out"

        with (spool / "inbox.txt").open("a") as inbox:
            inbox.write("latecomer /follow news\n")
        killed_at = time.monotonic()
        _wait(lambda: any(line.split()[0] == "1" for line in _lines(spool / "handled.log")), 30, "fail-over")
        failover_s = time.monotonic() - killed_at
        handled = {line.split()[0]: line.split()[1] for line in _lines(spool / "handled.log")}
        assert handled["0"] == first_leader and handled["1"] != first_leader
        assert failover_s < 10, f"inbound fail-over took {failover_s:.1f} s"

        def done() -> bool:
            with store.connection() as conn:
                open_rows = conn.execute(
                    text("SELECT count(*) FROM delivery WHERE status <> 'delivered'")
                ).scalar()
            return open_rows == 0 and len(_lines(spool / "sent.log")) >= FOLLOWERS

        _wait(done, 90, "every delivery")
        sends = [line.split() for line in _lines(spool / "sent.log")]
        per_target = collections.Counter(target for _, target, post, _ in sends if post == "1")
        # the latecomer gets the post too, once: as an earlier post, a new follower's history
        assert set(per_target) == {f"f{n}" for n in range(FOLLOWERS)} | {"latecomer"}
        repeated = sum(n - 1 for n in per_target.values())
        assert repeated <= CONCURRENCY, (
            f"{repeated} repeats; at most {CONCURRENCY} were in flight in the killed process"
        )
        assert {tag for *_, tag in sends} == set(nodes), "every process shared the delivery work"

        worst = _busiest_second([float(t) for t, *_ in sends])
        assert worst <= SPOOL_RATE, f"{worst} sends in one second; the budget is {SPOOL_RATE:.0f}/s"
        store.dispose()
    finally:
        for proc in nodes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for tag, proc in nodes.items():
            code = proc.wait(timeout=30)
            if tag != first_leader:
                assert code == 0, f"process {tag} did not stop cleanly"


def _count_members(store: Store) -> int:
    with store.connection() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM keyvalue WHERE key LIKE 'member:%'")).scalar() or 0
        )


@contextlib.contextmanager
def _three_processes(
    pg_url: str, tmp_path: Path
) -> Iterator[tuple[Path, dict[str, subprocess.Popen[bytes]]]]:
    """The channel with its 5,000 followers and three processes on it, each heartbeating;
    (the spool folder, the processes by tag). Each must stop cleanly at the end."""
    key, config, env = _configure(pg_url, tmp_path)
    _populate(pg_url, key)
    spool = tmp_path / "spool"
    nodes = _start_nodes(config, spool, env)
    try:
        _wait(lambda: len(_lines(spool / "nodes.log")) == 3, 30, "three processes")
        store = Store(pg_url)
        _wait(lambda: _count_members(store) == 3, 20, "three heartbeats")
        store.dispose()
        yield spool, nodes
    finally:
        for proc in nodes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in nodes.values():
            assert proc.wait(timeout=30) == 0


def test_six_hundred_simultaneous_follows_are_all_answered_within_the_shared_budget(
    pg_url: str, tmp_path: Path
) -> None:
    with _three_processes(pg_url, tmp_path) as (spool, _):
        with (spool / "inbox.txt").open("a") as inbox:
            inbox.write("operator /post news a fan-out running meanwhile\n")
            inbox.writelines(f"newcomer{n} /follow news\n" for n in range(600))

        def answered() -> set[str]:
            return {
                line.split()[1]
                for line in _lines(spool / "replies.log")
                if line.split()[1].startswith("newcomer") and "You now follow" in line
            }

        _wait(lambda: len(answered()) == 600, 90, "an answer to each of the 600")
        replies = [line.split() for line in _lines(spool / "replies.log")]
        per_target = collections.Counter(
            r[1] for r in replies if r[1].startswith("newcomer") and "You now follow" in " ".join(r[3:])
        )
        assert set(per_target.values()) == {1}, "each newcomer answered exactly once"
        assert len({r[2] for r in replies}) > 1, "replies went out from more than one process"
        times = [float(r[0]) for r in replies] + [float(s.split()[0]) for s in _lines(spool / "sent.log")]
        worst = _busiest_second(times)
        assert worst <= SPOOL_RATE, f"{worst} messages in one second; the budget is {SPOOL_RATE:.0f}/s"


def test_a_leader_frozen_past_its_lease_and_the_next_one_answer_each_follow_once(
    pg_url: str, tmp_path: Path
) -> None:
    """The inbound leader freezes (SIGSTOP) mid-burst for longer than its lease: another process
    takes the lease and fetches the lines the frozen one had not confirmed, and takes over the
    answers it had claimed; when it wakes, it finishes what it was handling before it notices.
    Each line is handled once, and the frozen process sends nothing another one already sent.
    The one repeat left is inherent to at-least-once sending: an answer whose request had left
    just before the freeze but whose outcome was not yet recorded goes out again from another
    process (at most `CONCURRENCY` of them, like a crash's)."""
    with _three_processes(pg_url, tmp_path) as (spool, nodes):
        owners = {line.split()[1]: line.split()[0] for line in _lines(spool / "nodes.log")}
        store = Store(pg_url)
        holder = store.lease_holder("inbound:spool", time.time(), 4.0)
        store.dispose()
        assert holder is not None
        frozen = owners[holder]
        leader = nodes[frozen]
        with (spool / "inbox.txt").open("a") as inbox:
            inbox.writelines(f"newcomer{n} /follow news\n" for n in range(300))
        _wait(lambda: len(_lines(spool / "handled.log")) >= 30, 30, "the burst to start")
        frozen_at = time.time()
        leader.send_signal(signal.SIGSTOP)
        time.sleep(7.0)  # past the lease (4 s): another process receives meanwhile
        leader.send_signal(signal.SIGCONT)

        def answers() -> dict[str, list[tuple[float, str]]]:
            """Each newcomer's answers: (when, by which process), in the order they went out."""
            sent: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
            for line in _lines(spool / "replies.log"):
                when, target, tag, *_ = line.split()
                if target.startswith("newcomer"):
                    sent[target].append((float(when), tag))
            return sent

        _wait(lambda: len(answers()) == 300, 60, "an answer to each of the 300")
        time.sleep(2.0)  # a second answer, if one were coming
        handlers = {line.split()[1] for line in _lines(spool / "handled.log")}
        assert len(handlers) >= 2, "the freeze must hand the lease over"
        repeated = {who: sent for who, sent in answers().items() if len(sent) > 1}
        in_flight = {who for who, sent in repeated.items() if sent[0][1] == frozen and sent[0][0] < frozen_at}
        assert set(repeated) == in_flight, f"repeats other than a send in flight at the freeze: {repeated}"
        assert all(len(sent) == 2 for sent in repeated.values())
        assert len(repeated) <= CONCURRENCY, f"{len(repeated)} repeats; at most {CONCURRENCY} were in flight"
