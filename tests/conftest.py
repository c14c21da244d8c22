"""Shared fixtures: a store URL per test (SQLite and PostgreSQL), and a running engine + worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.pg import fresh_database, pg_unavailable
from tests.support import Harness, build, sqlite_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database for one test, on each store kind."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    reason = pg_unavailable()
    if reason:
        pytest.skip(reason)
    with fresh_database() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, for tests about several processes sharing one (skipped
    when no server answers)."""
    reason = pg_unavailable()
    if reason:
        pytest.skip(reason)
    with fresh_database() as url:
        yield url


@pytest.fixture
def sqlite_store_url(tmp_path: Path) -> str:
    """A fresh SQLite file, for tests about the SQLite file itself."""
    return sqlite_url(tmp_path)


@pytest.fixture
async def harness(store_url: str) -> AsyncIterator[Harness]:
    """An engine and a running delivery worker over a fake adapter."""
    h = build(store_url)
    await h.worker.start()
    try:
        yield h
    finally:
        await h.worker.stop()
        h.store.dispose()


#: tests that keep both cores busy (several bridge processes, SIGKILL and restart, thousands of
#: sends against the local Bot API server) or measure time under load: under `pytest -n 2`
#: (pytest-xdist, the README's command 2) they run one after another on one worker
_CPU_HEAVY = (
    "tests/integration/test_multiprocess_pg.py",
    "tests/integration/test_privacy_e2e.py",
    "tests/integration/telegram/test_outbound_path.py",
    "tests/integration/telegram/test_outbound_order.py",
    "tests/integration/telegram/test_webhook_pg.py",
    "tests/integration/telegram/test_webhook.py",
    "tests/integration/ops/test_backup_restore.py",
    "tests/unit/test_crash_safety.py",
    "tests/unit/test_rotate_key.py",
    "tests/unit/test_notices.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration talks to real servers: mark it so `-m` can select.
    The CPU-heavy files share one xdist group (one worker, one at a time)."""
    for item in items:
        path = str(item.path).replace("\\", "/")
        if "/tests/integration/" in path:
            item.add_marker(pytest.mark.integration)
        if path.endswith(_CPU_HEAVY):
            item.add_marker(pytest.mark.xdist_group("cpu-heavy"))
