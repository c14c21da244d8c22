"""The `channelbridge` command: `run`, `check-config`, `keygen`, `db`, `rotate-key`,
`payments reconcile`, `backup`, `restore`, `status`.

Every command runs with umask 077: what it creates in data_dir is private to the operator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from bridge.config import ConfigError, check_config, config_file_warnings, load_settings
from bridge.platforms import load_problems
from bridge.privacy import generate_key


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="channelbridge",
        description="Private one-way broadcast channels on the chat platforms whose plug-ins are installed.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the bridge (the fallback platform when none is enabled)")
    run.add_argument("--config", type=Path, help="TOML config file (default: $CHANNELBRIDGE_CONFIG or none)")
    run.add_argument("--prompt", action="store_true", help="show a prompt on an interactive terminal")
    check = sub.add_parser("check-config", help="validate the config and say what would run")
    check.add_argument("--config", type=Path, help="TOML config file (default: $CHANNELBRIDGE_CONFIG)")
    sub.add_parser("keygen", help="print a new privacy key for [privacy] key")
    db = sub.add_parser("db", help="database schema: upgrade to this version, or show where it is")
    db.add_argument("action", choices=["upgrade", "current"])
    db.add_argument("--config", type=Path, help="TOML config file (default: $CHANNELBRIDGE_CONFIG)")
    rotate = sub.add_parser(
        "rotate-key",
        help="re-seal everything with a new privacy key (stop every process first; resumable)",
    )
    rotate.add_argument("--config", type=Path, help="TOML config file (default: $CHANNELBRIDGE_CONFIG)")
    rotate.add_argument("--batch-size", type=int, default=500, help="rows per transaction (default 500)")
    payments = sub.add_parser("payments", help="paid channels: compare the ledger with the platform's list")
    payments.add_argument("action", choices=["reconcile"])
    payments.add_argument("--config", type=Path, help="TOML config file (default: $CHANNELBRIDGE_CONFIG)")
    back = sub.add_parser("backup", help="write a consistent snapshot of the database to FILE (online)")
    back.add_argument("file", type=Path)
    back.add_argument("--config", type=Path, help="TOML config file (default: $CHANNELBRIDGE_CONFIG)")
    restore = sub.add_parser(
        "restore", help="replace the database with a backup (stop every process first; checks the key)"
    )
    restore.add_argument("file", type=Path)
    restore.add_argument("--config", type=Path, help="TOML config file (default: $CHANNELBRIDGE_CONFIG)")
    restore.add_argument("--force", action="store_true", help="replace a database that already holds data")
    status = sub.add_parser(
        "status", help="queues, leases, schedules, send rates and processes (counts only)"
    )
    status.add_argument("--config", type=Path, help="TOML config file (default: $CHANNELBRIDGE_CONFIG)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = _parser().parse_args(argv)
    os.umask(0o077)
    for problem in load_problems():
        print(f"channelbridge: warning: a platform plug-in was left out: {problem}", file=sys.stderr)
    if args.command == "check-config":
        code, lines = check_config(args.config)
        print("\n".join(lines), file=sys.stdout if code == 0 else sys.stderr)
        return code
    if args.command == "keygen":
        print(generate_key())
        return 0
    if args.command == "db":
        return _db(args.action, args.config)
    if args.command == "rotate-key":
        return _rotate_key(args.config, args.batch_size)
    if args.command == "payments":
        return _reconcile(args.config)
    if args.command in ("backup", "restore", "status"):
        from bridge.ops_cli import backup_command, restore_command, status_command

        if args.command == "backup":
            return backup_command(args.config, args.file)
        if args.command == "restore":
            return restore_command(args.config, args.file, force=args.force)
        return status_command(args.config)
    return _run(args.config, prompt=args.prompt)


def _run(config: Path | None, *, prompt: bool) -> int:
    from bridge.app import App, configure_logging, default_scheduler, run_app

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"channelbridge: the configuration has problems:\n{exc}", file=sys.stderr)
        return 1
    from bridge.keys import KeyMismatch
    from bridge.privacy import PrivacyKeyError

    configure_logging(settings.general.log_level, log_format=settings.general.log_format)
    for warning in config_file_warnings(config or _config_from_env()):
        logging.getLogger("channelbridge").warning(warning)
    try:
        app = App(settings, scheduler_factory=default_scheduler, prompt=prompt and sys.stdin.isatty())
        asyncio.run(run_app(app))
    except (KeyMismatch, PrivacyKeyError) as exc:
        print(f"channelbridge: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover - a second Ctrl-C during shutdown
        return 130
    return 0


def _reconcile(config: Path | None) -> int:
    from bridge.migrate import SchemaOutOfDate
    from bridge.reconcile import reconcile

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"channelbridge: the configuration has problems:\n{exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(reconcile(settings, lambda line: print(line, flush=True)))
    except SchemaOutOfDate as exc:
        print(f"channelbridge: {exc}", file=sys.stderr)
        return 1


def _config_from_env() -> Path | None:
    named = os.environ.get("CHANNELBRIDGE_CONFIG")
    return Path(named) if named else None


def _rotate_key(config: Path | None, batch: int) -> int:
    from bridge import migrate
    from bridge.keys import KeyMismatch, rotate_key
    from bridge.privacy import PrivacyKeyError
    from bridge.store import Store

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"channelbridge: the configuration has problems:\n{exc}", file=sys.stderr)
        return 1
    store = Store(settings.database_url)
    configured = settings.privacy.key.get_secret_value() if settings.privacy.key else None
    try:
        migrate.require_head(store.engine)
        report = rotate_key(
            store,
            configured,
            settings.general.data_dir,
            batch=max(1, batch),
            progress=lambda line: print(line, flush=True),
            file_dirs=settings.sealed_dirs(),
        )
    except (KeyMismatch, PrivacyKeyError, migrate.SchemaOutOfDate) as exc:
        print(f"channelbridge: {exc}", file=sys.stderr)
        return 1
    finally:
        store.dispose()
    done = ", ".join(f"{table} {n}" for table, n in report.resealed.items() if n) or "nothing to re-seal"
    print(f"re-sealed: {done}")
    unreadable = {t: n for t, n in report.unreadable.items() if n}
    if unreadable:
        print(f"left as they were (they did not open with the old key): {unreadable}")
    if report.invites_voided:
        print(f"{report.invites_voided} unused admin invite(s) voided: admins can mint new ones")
    if configured:
        print(
            f"the new key is in {report.key_file}: put it in [privacy] key / CHANNELBRIDGE_PRIVACY__KEY, "
            "back it up, then delete that file and start the processes"
        )
    else:
        print(
            f"the new key is {report.key_file} (the old one is kept as privacy.key.old: delete it once the "
            "new key is backed up)"
        )
    return 0


def _db(action: str, config: Path | None) -> int:
    from bridge import migrate
    from bridge.store import Store

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"channelbridge: the configuration has problems:\n{exc}", file=sys.stderr)
        return 1
    from bridge.keys import KeyMismatch, load_key_for
    from bridge.privacy import PrivacyKeyError, Sealer

    store = Store(settings.database_url)
    try:
        if action == "upgrade":
            configured = settings.privacy.key.get_secret_value() if settings.privacy.key else None
            try:
                sealer = Sealer(load_key_for(store, configured, settings.general.data_dir))
            except (PrivacyKeyError, KeyMismatch) as exc:
                print(f"channelbridge: {exc}", file=sys.stderr)
                return 1
            migrate.upgrade(store.engine, sealer=sealer)
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
