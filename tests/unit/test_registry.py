"""The command registry: every command of the grammar has exactly one handler, the engine's
flags are where they were, and the grammar stays below the store and the engine."""

from __future__ import annotations

import subprocess
import sys

from bridge.commands import ARGS_BY_NAME, COMMANDS, Command, FollowArgs, PollArgs
from bridge.engine.registry import ROUTES


def test_every_command_has_one_route_and_one_arguments_class() -> None:
    assert set(ARGS_BY_NAME) == set(COMMANDS)
    assert {route.spec.name for route in ROUTES.values()} == set(COMMANDS)
    for name, spec in COMMANDS.items():
        assert spec.args is ARGS_BY_NAME[name] and spec.args.name == name
        assert ROUTES[spec.args].spec is spec


def test_timed_and_media_flags() -> None:
    timed = {route.spec.name for route in ROUTES.values() if route.timed}
    media = {route.spec.name for route in ROUTES.values() if route.keeps_media}
    assert timed == {"schedule", "every", "poll", "quiz", "cancel", "delete", "deletechannel", "edit"}
    assert media == {"post", "schedule"}


def test_command_by_name_builds_the_typed_arguments() -> None:
    assert Command("follow", handle="news") == FollowArgs("news")
    poll = Command("poll", handle="news", text="Q", options=("a", "b"))
    assert isinstance(poll, PollArgs) and poll.name == "poll" and not poll.multi


def test_the_grammar_imports_neither_the_store_nor_the_engine() -> None:
    code = (
        "import sys, bridge.commands, bridge.when; "
        "bad = [m for m in sys.modules if m.startswith(('bridge.store', 'bridge.engine', 'sqlmodel'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
