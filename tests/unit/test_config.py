"""Configuration loads from TOML and the environment, and refuses bad input by key name."""

from __future__ import annotations

import base64
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from bridge.config import (
    ConfigError,
    ConfigProblem,
    Settings,
    check_config,
    load_settings,
)
from bridge.ports import RateLimits

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
REAL_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def problems(path: Path | None = None, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=env or {})
    return caught.value.problems


def keys(found: list[ConfigProblem]) -> list[str]:
    return [problem.key for problem in found]


def test_defaults_load_with_no_file() -> None:
    settings = load_settings(env={})

    assert settings.general.data_dir == Path("data")
    assert settings.general.tz.key == "UTC"
    assert settings.database_url == "sqlite:///data/channelbridge.db"
    assert settings.console_enabled is True
    assert settings.telegram.enabled is False
    assert settings.matrix_store_dir == Path("data/matrix-store")
    assert settings.delivery.concurrency == 16
    assert settings.telegram.rate_limit.as_limits() == RateLimits(30, 1, 20)


def test_env_overrides_a_nested_key() -> None:
    settings = load_settings(env={"CHANNELBRIDGE_DELIVERY__CONCURRENCY": "4"})

    assert settings.delivery.concurrency == 4
    assert settings.delivery.batch_size == 500


def test_env_overrides_the_file_and_reaches_two_levels_down(tmp_path: Path) -> None:
    path = write(tmp_path, "[delivery]\nconcurrency = 8\nbatch_size = 50\n")

    settings = load_settings(
        path,
        env={
            "CHANNELBRIDGE_DELIVERY__CONCURRENCY": "4",
            "CHANNELBRIDGE_TELEGRAM__RATE_LIMIT__GLOBAL_PER_S": "12.5",
        },
    )

    assert settings.delivery.concurrency == 4
    assert settings.delivery.batch_size == 50
    assert settings.telegram.rate_limit.global_per_s == 12.5


def test_explicit_env_hides_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNELBRIDGE_DELIVERY__CONCURRENCY", "3")

    assert load_settings(env={}).delivery.concurrency == 16
    assert load_settings().delivery.concurrency == 3


def test_config_path_comes_from_env_when_not_given(tmp_path: Path) -> None:
    path = write(tmp_path, '[general]\ntimezone = "Europe/Berlin"\n')

    settings = load_settings(env={"CHANNELBRIDGE_CONFIG": str(path)})

    assert settings.general.tz.key == "Europe/Berlin"


def test_unknown_key_refused_by_dotted_name(tmp_path: Path) -> None:
    path = write(tmp_path, '[telegram]\ntokn = "x"\n\n[delivery]\nretries = 3\n')

    found = problems(path)

    assert keys(found) == ["telegram.tokn", "delivery.retries"]
    assert found[0].message == "unknown key"
    assert "'token'" in found[0].fix


def test_unknown_section_refused(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "[telegarm]\nenabled = true\n"))

    assert keys(found) == ["telegarm"]
    assert "'telegram'" in found[0].fix


def test_env_var_with_one_underscore_is_refused_not_ignored() -> None:
    found = problems(env={"CHANNELBRIDGE_TELEGRAM_TOKEN": "123:abc"})

    assert keys(found) == ["CHANNELBRIDGE_TELEGRAM_TOKEN"]
    assert "CHANNELBRIDGE_TELEGRAM__TOKEN" in found[0].fix
    assert "123:abc" not in str(found[0])


def test_wrong_type_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[delivery]\nconcurrency = "many"\n[telegram]\nenabled = "perhaps"\n')

    found = problems(path)

    assert keys(found) == ["telegram.enabled", "delivery.concurrency"]
    assert found[0].fix == "use true or false"
    assert found[1].fix == "use a whole number"


def test_wrong_type_from_env_names_the_variable() -> None:
    found = problems(env={"CHANNELBRIDGE_DELIVERY__CONCURRENCY": "lots"})

    assert keys(found) == ["delivery.concurrency"]
    assert "CHANNELBRIDGE_DELIVERY__CONCURRENCY" in found[0].message


def test_out_of_range_value_named_with_its_bound(tmp_path: Path) -> None:
    path = write(tmp_path, "[delivery]\nconcurrency = 1000\n[telegram.rate_limit]\nglobal_per_s = 0\n")

    found = problems(path)

    assert keys(found) == ["telegram.rate_limit.global_per_s", "delivery.concurrency"]
    assert found[0].fix == "use a value > 0"
    assert found[1].fix == "use a value <= 256"


def test_invalid_timezone_named(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[general]\ntimezone = "Mars/Olympus_Mons"\n'))

    assert keys(found) == ["general.timezone"]
    assert "IANA" in found[0].message


def test_placeholder_token_refused_when_telegram_enabled(tmp_path: Path) -> None:
    path = write(tmp_path, '[telegram]\nenabled = true\ntoken = "123456:REPLACE-ME"\n')

    found = problems(path)

    assert keys(found) == ["telegram.token"]
    assert "placeholder" in found[0].message
    assert "CHANNELBRIDGE_TELEGRAM__TOKEN" in found[0].fix


def test_placeholder_token_allowed_while_telegram_disabled(tmp_path: Path) -> None:
    path = write(tmp_path, '[telegram]\nenabled = false\ntoken = "123456:REPLACE-ME"\n')

    assert load_settings(path, env={}).telegram.enabled is False


def test_missing_token_when_telegram_enabled() -> None:
    found = problems(env={"CHANNELBRIDGE_TELEGRAM__ENABLED": "true"})

    assert keys(found) == ["telegram.token"]
    assert "required" in found[0].message


def test_token_from_env_enables_telegram(tmp_path: Path) -> None:
    path = write(tmp_path, '[telegram]\nenabled = true\ntoken = "123456:REPLACE-ME"\n')

    settings = load_settings(path, env={"CHANNELBRIDGE_TELEGRAM__TOKEN": "123456:realtoken"})

    assert settings.telegram.token is not None
    assert settings.telegram.token.get_secret_value() == "123456:realtoken"
    assert "realtoken" not in repr(settings)
    assert settings.console_enabled is False


def test_enabled_matrix_names_each_missing_key() -> None:
    found = problems(env={"CHANNELBRIDGE_MATRIX__ENABLED": "1"})

    assert keys(found) == ["matrix.homeserver", "matrix.user_id", "matrix.access_token"]


def test_placeholder_privacy_key_always_refused(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[privacy]\nkey = "REPLACE-ME"\n'))

    assert keys(found) == ["privacy.key"]
    assert "placeholder" in found[0].message


def test_privacy_key_must_be_32_bytes_of_urlsafe_base64(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[privacy]\nkey = "c2hvcnQ"\n'))
    settings = load_settings(env={"CHANNELBRIDGE_PRIVACY__KEY": REAL_KEY})

    assert keys(found) == ["privacy.key"]
    assert settings.privacy.key is not None
    assert settings.privacy.key.get_secret_value() == REAL_KEY


def test_bad_mirror_string_named_by_position(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[channels]]\nhandle = "news"\nname = "News"\n'
        'mirrors = ["matrix:!room:example.org", "telegram:news-room"]\n',
    )

    found = problems(path)

    assert keys(found) == ["channels.0.mirrors.1"]
    assert "telegram:<chat id>" in found[0].fix


def test_mirror_on_a_disabled_platform_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[[channels]]\nhandle = "news"\nname = "News"\nmirrors = ["telegram:-100123"]\n')

    found = problems(path)

    assert keys(found) == ["channels.0.mirrors.0"]
    assert "telegram.enabled" in found[0].fix


def test_bad_handle_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[channels]]\nhandle = "news"\nname = "News"\n[[channels]]\nhandle = "Bad-Handle"\nname = "x"\n',
    )

    found = problems(path)

    assert keys(found) == ["channels.1.handle"]
    assert "3-32" in found[0].message


def test_duplicate_handle_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[[channels]]\nhandle = "news"\nname = "A"\n[[channels]]\nhandle = "news"\nname = "B"\n'
    )

    assert keys(problems(path)) == ["channels.1.handle"]


def test_operator_needs_an_identity_and_a_valid_matrix_id(tmp_path: Path) -> None:
    path = write(tmp_path, '[[operators]]\ntelegram = 42\n[[operators]]\n[[operators]]\nmatrix = "bob"\n')

    found = problems(path)

    assert keys(found) == ["operators.1", "operators.2.matrix"]


def test_operators_and_channels_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[operators]]\ntelegram = 42\nmatrix = "@op:example.org"\n'
        '[matrix]\nenabled = true\nhomeserver = "http://127.0.0.1:8008"\n'
        'user_id = "@bot:localhost"\npassword = "pw"\n'
        '[[channels]]\nhandle = "city_news"\nname = "City News"\nmirrors = ["matrix:!abc"]\n',
    )

    settings = load_settings(path, env={})

    assert settings.operators[0].telegram == 42
    assert settings.channels[0].mirrors == ["matrix:!abc"]
    assert settings.console_enabled is False


def test_unsupported_database_scheme_refused() -> None:
    found = problems(env={"CHANNELBRIDGE_DATABASE__URL": "mysql://db/x"})

    assert keys(found) == ["database.url"]
    assert "postgresql+psycopg://" in found[0].fix


def test_settings_are_frozen() -> None:
    settings = load_settings(env={})

    with pytest.raises(ValidationError):
        settings.delivery.concurrency = 2


def test_example_file_loads_clean() -> None:
    settings = load_settings(EXAMPLE, env={})

    assert settings.telegram.enabled is False
    assert settings.matrix.enabled is False
    assert settings.console_enabled is True
    assert settings.privacy.key is None
    assert settings == load_settings(env={}).model_copy(
        update={"telegram": settings.telegram, "matrix": settings.matrix}
    )


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    found = []
    for name, info in model.model_fields.items():
        inner = typing.get_args(info.annotation) or (info.annotation,)
        nested = next((t for t in inner if isinstance(t, type) and issubclass(t, BaseModel)), None)
        if nested is None:
            found.append(prefix + name)
        else:
            found.extend(_leaf_keys(nested, f"{prefix}{name}."))
    return found


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    headers = re.findall(r"^#? ?\[\[?([a-z_.]+)\]\]?$", text, flags=re.MULTILINE)
    assignments = set(re.findall(r"^#? ?([a-z_]+) = ", text, flags=re.MULTILINE))

    leaves = _leaf_keys(Settings)

    assert len(leaves) > 40
    for dotted in leaves:
        *tables, key = dotted.split(".")
        assert ".".join(tables) in headers, f"[{'.'.join(tables)}] not in the example"
        assert key in assignments, f"{dotted} not documented in the example"


@pytest.mark.parametrize("section", ["telegram", "matrix"])
def test_example_copied_unchanged_and_enabled_is_refused_by_name(section: str) -> None:
    env = {f"CHANNELBRIDGE_{section.upper()}__ENABLED": "true"}

    found = problems(EXAMPLE, env=env)

    expected = {"telegram": "telegram.token", "matrix": "matrix.access_token"}[section]
    assert keys(found) == [expected]
    assert "placeholder" in found[0].message


def test_missing_file_named(tmp_path: Path) -> None:
    found = problems(tmp_path / "nope.toml")

    assert keys(found) == ["config"]
    assert "nope.toml" in found[0].message


def test_toml_syntax_error_reported_with_key_config(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[general]\ntimezone = "UTC"\nlog_level = INFO\n'))

    assert keys(found) == ["config"]
    assert "line 3" in found[0].message


def test_check_config_succeeds_with_a_summary_without_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[[operators]]\ntelegram = 987654321\n[telegram]\nenabled = true\n"
        '[[channels]]\nhandle = "news"\nname = "News"\n',
    )
    env = {
        "CHANNELBRIDGE_TELEGRAM__TOKEN": "123456:secret-token",
        "CHANNELBRIDGE_PRIVACY__KEY": REAL_KEY,
    }

    code, lines = check_config(path, env=env)

    text = "\n".join(lines)
    assert code == 0
    assert "adapters: telegram" in lines
    assert "operators: 1" in lines
    assert any(line.startswith("database: sqlite") for line in lines)
    assert "news" in text
    for secret in ("secret-token", REAL_KEY, "987654321"):
        assert secret not in text


def test_check_config_fails_with_one_line_per_problem(tmp_path: Path) -> None:
    path = write(tmp_path, '[general]\ntimezone = "Nowhere/City"\n[delivery]\nbatch_size = 0\n')

    code, lines = check_config(path, env={"CHANNELBRIDGE_TELEGRAM__ENABLED": "true"})

    assert code == 1
    assert [line.split(":", 1)[0] for line in lines] == [
        "general.timezone",
        "telegram.token",
        "delivery.batch_size",
    ]
    assert all(" — fix: " in line for line in lines)


def test_config_error_lists_problems_one_per_line() -> None:
    error = ConfigError([ConfigProblem("a.b", "bad", "do x"), ConfigProblem("c", "worse", "do y")])

    assert str(error) == "a.b: bad — fix: do x\nc: worse — fix: do y"
