"""``python -m modelregistry_server``: run the service until SIGTERM/SIGINT.

``python -m modelregistry_server api-keys …`` manages API keys instead (see
:mod:`.api_keys_cli`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from . import api_keys_cli
from .api.logs import configure_logging
from .app import verify_event_log
from .config import Config, load_config
from .domain.errors import DomainError
from .process import run_process
from .storage.metadata import DatabaseInUseError, SchemaTooNewError, migrate_database
from .supervisor import supervise


def main(argv: Sequence[str] | None = None) -> int:
    """Parse configuration, serve (one process, or ``--workers N`` under a supervisor), and
    shut down gracefully on a signal; or run a command (``api-keys …``, ``events verify``,
    ``migrate``)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["api-keys"]:
        return api_keys_cli.main(args[1:])
    if args[:1] == ["events"]:
        return events_command(args[1:])
    if args[:1] == ["migrate"]:
        return migrate_command(args[1:])
    config = load_config(args)
    configure_logging(config.log_level, config.log_format, config.log_sql)
    # A file-size limit (RLIMIT_FSIZE) makes writes fail with EFBIG, reported as UNAVAILABLE
    # like a full disk, instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if config.workers > 1:
        return supervise(config)
    return run_process(config)


def _database_url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MODELREGISTRY_DATABASE_URL", Config().database_url),
        help="the metadata database (env MODELREGISTRY_DATABASE_URL)",
    )


def migrate_command(argv: Sequence[str]) -> int:
    """``migrate [--database-url URL]``: apply the pending schema migrations and exit; 0 once
    the schema is current, 2 if the database cannot be opened or a newer release migrated it.
    """
    parser = argparse.ArgumentParser(
        prog="modelregistry-server migrate",
        description="Apply pending schema migrations to the metadata database and exit.",
    )
    _database_url_option(parser)
    ns = parser.parse_args(argv)
    try:
        before, after = migrate_database(ns.database_url)
    except (ValueError, OSError, SchemaTooNewError, DatabaseInUseError, DomainError) as exc:
        print(f"modelregistry: cannot migrate: {exc}", file=sys.stderr, flush=True)
        return 2
    if before == after:
        print(f"schema is current (version {after})", flush=True)
    else:
        print(f"schema migrated from version {before} to {after}", flush=True)
    return 0


def events_command(argv: Sequence[str]) -> int:
    """``events verify --database-url URL``: walk every tenant's event chain; exit 0 if all
    verify, 1 if one does not (the first bad event is printed), 2 if the database cannot be
    opened."""
    parser = argparse.ArgumentParser(prog="modelregistry-server events")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="walk every tenant's hash chain")
    _database_url_option(verify)
    ns = parser.parse_args(argv)
    try:
        results = verify_event_log(ns.database_url)
    except (ValueError, OSError, SchemaTooNewError, DatabaseInUseError, DomainError) as exc:
        print(f"modelregistry: cannot open the database: {exc}", file=sys.stderr, flush=True)
        return 2
    failed = False
    for r in results:
        if r.ok:
            print(
                f"tenant {r.tenant}: ok, {r.checked} events, last {r.last_sequence}, "
                f"head {r.head_hash}"
            )
        else:
            failed = True
            print(f"tenant {r.tenant}: FAILED at event {r.failed_sequence}: {r.reason}")
    if not results:
        print("no events recorded")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
