"""`/mirror` takes exactly what the installed plug-ins say: the grammar checks the shape, the
engine the platform and the address against each plug-in's mirror syntax."""

from __future__ import annotations

import re

import pytest

from bridge.commands import MirrorArgs, parse_command
from bridge.engine.admin_channels import check_mirror_address
from bridge.engine.core import BadArguments
from bridge.platforms import MirrorSyntax, OperatorId, PlatformPlugin, Platforms, PlatformSettings
from bridge.ports import Adapter


def _never(section: object, services: object) -> Adapter:
    raise AssertionError("not built in this test")


def _plugin(name: str, *, mirror: bool, creatable: bool = False) -> PlatformPlugin:
    syntax = MirrorSyntax(
        pattern=re.compile(r"#[a-z]{3,20}"),
        config_pattern=re.compile(r"#[a-z]+"),
        noun="a hall name",
        placeholder="<#hall>",
        example="#lobby",
        hint="like #lobby",
        creatable=creatable,
    )
    return PlatformPlugin(
        name=name,
        settings_model=PlatformSettings,
        factory=_never,
        operator=OperatorId(str, '"<name>"'),
        mirror=syntax if mirror else None,
    )


def _args(text: str) -> MirrorArgs:
    parsed = parse_command(text)
    assert isinstance(parsed, MirrorArgs), parsed
    return parsed


def test_a_platform_unknown_to_the_plug_ins_is_refused_naming_those_that_are() -> None:
    platforms = Platforms((_plugin("halls", mirror=True, creatable=True), _plugin("chat", mirror=False)))
    check_mirror_address(platforms, _args("/mirror news halls:#lobby"))
    check_mirror_address(platforms, _args("/mirror news create halls"))
    with pytest.raises(BadArguments, match=r"expected create halls or halls:<#hall>, not 'chat:#x'"):
        check_mirror_address(platforms, _args("/mirror news chat:#x"))
    with pytest.raises(BadArguments, match=r"'lobby' is not a hall name \(like #lobby\)"):
        check_mirror_address(platforms, _args("/mirror news halls:lobby"))


def test_create_is_refused_when_no_installed_platform_creates_rooms() -> None:
    platforms = Platforms((_plugin("halls", mirror=True),))
    with pytest.raises(BadArguments, match="no installed platform lets the bot create mirror rooms"):
        check_mirror_address(platforms, _args("/mirror news create halls"))
