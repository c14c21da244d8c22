"""Shared fixtures: a store URL per test, and a running engine + worker harness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import Harness, build, sqlite_url


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A fresh database for one test."""
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
