"""The language a person chose with `/lang`: it wins over the platform's language, it is kept
against a blind index only (no address in clear), `rotate-key` keeps it and `/forgetme` erases
it; `general.language` must name a known catalog."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from bridge import migrate
from bridge.config import load_settings
from bridge.config_problems import ConfigError
from bridge.engine import ChannelEngine
from bridge.keys import rotate_key, verify_key
from bridge.ports import Address, Message
from bridge.privacy import Sealer, decode_key, generate_key, read_key_file, write_key_file
from bridge.store import Store
from tests.support import OPERATOR

PERSON = Address("telegram", "700000123")


async def _say(engine: ChannelEngine, text_: str, language: str | None = None) -> str:
    replies = await engine.handle(Message(PERSON, text_, language=language))
    return replies[0].text


async def test_a_lang_choice_wins_over_the_platform_language_and_forgetme_erases_it(
    tmp_path: Path, store_url: str
) -> None:
    sealer = Sealer(decode_key(generate_key()))
    store = Store(store_url)
    migrate.upgrade(store.engine, sealer=sealer)
    engine = ChannelEngine(store, sealer, operators=[OPERATOR])
    answer = await _say(engine, "/following", "fr")
    assert answer == "Vous ne suivez aucun canal. Envoyez /channels pour en trouver."
    assert await _say(engine, "/lang fr") == "Désormais, je vous réponds en français."
    assert (await _say(engine, "/following")).startswith("Vous ne suivez aucun canal")
    assert await _say(engine, "/lang en", "fr") == "From now on I answer you in English."
    assert (await _say(engine, "/following", "fr")).startswith("You follow no channels")
    with store.connection() as conn:
        rows = conn.execute(text("SELECT platform, account_index, sealed FROM personlanguage")).all()
    assert len(rows) == 1 and PERSON.id not in repr(rows)
    await _say(engine, "/forgetme")
    with store.connection() as conn:
        assert conn.execute(text("SELECT count(*) FROM personlanguage")).scalar() == 0
    assert (await _say(engine, "/following", "fr")).startswith("Vous ne suivez aucun canal")


async def test_rotate_key_keeps_the_language_a_person_chose(tmp_path: Path, store_url: str) -> None:
    data_dir = tmp_path / "data"
    write_key_file(data_dir / "privacy.key", generate_key())
    old = Sealer(read_key_file(data_dir / "privacy.key"))
    store = Store(store_url)
    migrate.upgrade(store.engine, sealer=old)
    verify_key(store, old, "test")
    await _say(ChannelEngine(store, old, operators=[OPERATOR]), "/lang fr")

    report = rotate_key(store, None, data_dir)

    new = Sealer(read_key_file(data_dir / "privacy.key"))
    assert report.resealed.get("personlanguage") == 1
    with store.unit_of_work() as s:
        assert store.languages.of(s, old.address_index(PERSON)) is None
        assert store.languages.of(s, new.address_index(PERSON)) == "fr"
    assert (await _say(ChannelEngine(store, new, operators=[OPERATOR]), "/following")).startswith("Vous")


def test_an_unknown_general_language_is_refused_with_the_key_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[general]\nlanguage = "de"\n')
    try:
        load_settings(path, env={})
    except ConfigError as exc:
        message = str(exc)
    else:
        raise AssertionError("general.language = 'de' was accepted")
    assert "general.language" in message and '"en", "fr"' in message
