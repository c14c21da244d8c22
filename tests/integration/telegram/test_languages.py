"""French and English per person, through the whole App against the local Bot API server: a
French Telegram user is answered in French and the French menu exists; `/lang en` switches that
user to English, also after a restart; `/forgetme` forgets the choice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bridge.app import App, build_adapters
from bridge.config import load_settings
from bridge.i18n import set_default_language
from tests.integration.telegram.conftest import until
from tests.integration.telegram.test_telegram_app import Bridge
from tests.telegram_api import FakeBotApi

pytestmark = [
    pytest.mark.telegram,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

Launch = Callable[[], Awaitable[Bridge]]


@pytest.fixture
async def launch(api: FakeBotApi, tmp_path: Path) -> AsyncIterator[Launch]:
    """Start an App whose Telegram adapter is built from config by its plug-in (menus included),
    on one data directory: calling it again after a stop is a restart."""
    apps: list[App] = []
    operator = api.add_user("Olga")

    async def make() -> Bridge:
        settings = load_settings(
            None,
            env={
                "CHANNELBRIDGE_GENERAL__DATA_DIR": str(tmp_path / "data"),
                "CHANNELBRIDGE_OPERATORS": json.dumps([{"telegram": operator.id}]),
                "CHANNELBRIDGE_TELEGRAM__ENABLED": "true",
                "CHANNELBRIDGE_TELEGRAM__TOKEN": api.token,
                "CHANNELBRIDGE_TELEGRAM__API_BASE_URL": api.base_url,
                "CHANNELBRIDGE_TELEGRAM__FILE_BASE_URL": api.file_base_url,
                "CHANNELBRIDGE_TELEGRAM__POLL_TIMEOUT": "1",
            },
        )
        app = App(settings, adapters=build_adapters(settings))
        await app.start()
        apps.append(app)
        return Bridge(app, api, operator)

    yield make
    for app in apps:
        if not app.stopped.is_set():
            await app.stop()
    set_default_language("en")


async def test_a_french_telegram_user_is_answered_in_french_and_has_a_french_menu(
    launch: Launch, api: FakeBotApi
) -> None:
    bridge = await launch()
    await bridge.ask(bridge.operator, "/newchannel news Daily News", "created")
    amelie = api.add_user("Amélie")
    amelie.language_code = "fr-FR"
    answer = await bridge.ask(amelie, "/start news", "Vous suivez maintenant Daily News")
    assert "personne d'autre ne peut voir" in answer
    await bridge.ask(amelie, "/follow nope", "Il n'y a pas de canal 'nope'")
    await bridge.ask(amelie, "/vote x", "Utilisation : /vote <n° de publication>")
    # the operator's app sends no language_code: English, the default
    await bridge.ask(bridge.operator, "/following", "You follow no channels")

    default = {c["command"]: c["description"] for c in api.commands_by_language[("default", "")]}
    french = {c["command"]: c["description"] for c in api.commands_by_language[("default", "fr")]}
    english = {c["command"]: c["description"] for c in api.commands_by_language[("default", "en")]}
    assert default["follow"] == english["follow"] == "receive a channel's posts"
    assert french["follow"] == "recevoir les publications d'un canal"
    assert french["lang"] == "choisir la langue dans laquelle le bot vous répond"
    assert set(french) == set(default)
    private = api.commands_by_language[("all_private_chats", "fr")]
    private_fr = {c["command"]: c["description"] for c in private}
    assert private_fr["newchannel"] == "créer un canal"
    assert api.commands["default"] == api.commands_by_language[("default", "")]


async def test_lang_en_switches_a_french_user_to_english_across_a_restart_until_forgetme(
    launch: Launch, api: FakeBotApi
) -> None:
    bridge = await launch()
    await bridge.ask(bridge.operator, "/newchannel news Daily News", "created")
    amelie = api.add_user("Amélie")
    amelie.language_code = "fr"
    await bridge.ask(amelie, "/lang", "Je vous réponds en français. Pour changer : /lang en (English)")
    await bridge.ask(amelie, "/lang en", "From now on I answer you in English.")
    await bridge.ask(amelie, "/follow news", "You now follow Daily News")

    await bridge.app.stop()
    bridge = await launch()
    await bridge.ask(amelie, "/following", "You follow:")
    await bridge.ask(amelie, "/lang", "You are answered in English.")

    await bridge.ask(amelie, "/forgetme", "Done: your follows")
    await bridge.ask(amelie, "/following", "Vous ne suivez aucun canal.")
    await bridge.ask(amelie, "/lang de", "'de' n'est pas une langue que ce bot parle")


async def test_a_french_users_privacy_answer_and_slow_down_are_in_french(
    launch: Launch, api: FakeBotApi
) -> None:
    bridge = await launch()
    amelie = api.add_user("Amélie")
    amelie.language_code = "fr"
    answer = await bridge.ask(amelie, "/privacy", "Ce que ce bot conserve à votre sujet :")
    assert "La langue choisie avec /lang est conservée sous votre index aveugle" in answer
    assert "What this bot stores" not in answer

    for _ in range(40):  # far more than the per-sender throttle lets through
        api.user_sends_text(amelie.id, "/help")
    slow_down = "Vous envoyez des commandes trop vite"
    await until(
        lambda: any(slow_down in (m.text or "") for m in api.bot_messages(amelie.id)),
        20,
        "the slow-down answer, in French",
    )
    assert not any("sending commands too quickly" in (m.text or "") for m in api.bot_messages(amelie.id))
