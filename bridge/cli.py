"""The `channelbridge` command: `run`, `check-config`, `keygen`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bridge.config import ConfigError, check_config, load_settings
from bridge.privacy import generate_key


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="channelbridge",
        description="Private one-way broadcast channels on Telegram, Matrix and a local console.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the bridge (console adapter when no platform is enabled)")
    run.add_argument("--config", type=Path, help="TOML config file (default: $CHANNELBRIDGE_CONFIG or none)")
    run.add_argument("--prompt", action="store_true", help="show a prompt in the console")
    check = sub.add_parser("check-config", help="validate the config and say what would run")
    check.add_argument("--config", type=Path, help="TOML config file (default: $CHANNELBRIDGE_CONFIG)")
    sub.add_parser("keygen", help="print a new privacy key for [privacy] key")
    db = sub.add_parser("db", help="database schema: upgrade to this version, or show where it is")
    db.add_argument("action", choices=["upgrade", "current"])
    db.add_argument("--config", type=Path, help="TOML config file (default: $CHANNELBRIDGE_CONFIG)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        code, lines = check_config(args.config)
        print("\n".join(lines), file=sys.stdout if code == 0 else sys.stderr)
        return code
    if args.command == "keygen":
        print(generate_key())
        return 0
    if args.command == "db":
        return _db(args.action, args.config)
    return _run(args.config, prompt=args.prompt)


def _run(config: Path | None, *, prompt: bool) -> int:
    from bridge.app import App, build_console, configure_logging, default_scheduler, run_app

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"channelbridge: the configuration has problems:\n{exc}", file=sys.stderr)
        return 1
    configure_logging(settings.general.log_level)
    console = build_console(prompt=prompt and sys.stdin.isatty()) if settings.console_enabled else None
    app = App(settings, console=console, scheduler_factory=default_scheduler)
    try:
        asyncio.run(run_app(app, console))
    except KeyboardInterrupt:  # pragma: no cover - a second Ctrl-C during shutdown
        return 130
    return 0


def _db(action: str, config: Path | None) -> int:
    from bridge import migrate
    from bridge.store import Store

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"channelbridge: the configuration has problems:\n{exc}", file=sys.stderr)
        return 1
    store = Store(settings.database_url)
    try:
        if action == "upgrade":
            migrate.upgrade(store.engine)
        current, head = migrate.current_revision(store.engine), migrate.head_revision()
        print(
            f"schema at {current or 'nothing'}; this version needs {head}"
            + (" (up to date)" if current == head else " — run `channelbridge db upgrade`")
        )
        return 0 if current == head else 1
    finally:
        store.dispose()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
