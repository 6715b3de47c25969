"""``modelregistry-server api-keys create|list|revoke``: manage API keys straight in the
metadata database, to bootstrap the first admin key of a tenant (no server needed).

``create`` prints the credential alone on stdout (so ``KEY=$(… create …)`` works) and what was
made on stderr; the credential is never shown again. ``--json`` prints JSON instead.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TextIO

from .config import Config
from .domain.api_keys import ApiKeys, api_key_name, parse_api_key_name
from .domain.entities import ApiKey
from .domain.errors import DomainError, NotFound, Reason
from .domain.identity import ALL_SCOPES, DEFAULT_TENANT, Caller
from .domain.registry import utc_now
from .storage.metadata import (
    DatabaseInUseError,
    PeeweeMetadataStore,
    SchemaTooNewError,
    open_metadata_store,
)

PROG = "modelregistry-server api-keys"
_COLUMNS = ("KEY_ID", "NAME", "TENANT", "SCOPES", "CREATED", "EXPIRES", "REVOKED", "LAST_USED")


def _parser(env: dict[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Create, list and revoke API keys in the metadata database."
    )
    database = env.get("MODELREGISTRY_DATABASE_URL", Config().database_url)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        default=database,
        help=f"the server's metadata database (env MODELREGISTRY_DATABASE_URL; now {database})",
    )
    common.add_argument("--json", action="store_true", help="print JSON")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", parents=[common], help="create a key")
    create.add_argument("--tenant", default=DEFAULT_TENANT, help="the key's tenant")
    create.add_argument("--name", required=True, help="what the key is for (e.g. ci-deploy)")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        dest="scopes",
        help="a scope the key grants (repeat): registry.read, .create, .update, .delete, .admin",
    )
    create.add_argument("--expire-days", type=float, help="the key stops working after this")
    listing = commands.add_parser("list", parents=[common], help="list a tenant's keys")
    listing.add_argument("--tenant", default=DEFAULT_TENANT, help="whose keys")
    revoke = commands.add_parser("revoke", parents=[common], help="revoke a key")
    revoke.add_argument("key_id", help="the key's id (or apiKeys/{key_id})")
    return parser


def main(argv: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Run one command; 0 on success, 1 if it was refused, 2 if the database cannot be used."""
    parser = _parser(dict(os.environ if env is None else env))
    args = parser.parse_args(list(argv))
    if getattr(args, "expire_days", None) is not None and args.expire_days <= 0:
        parser.error("--expire-days must be positive")
    try:
        store = open_metadata_store(args.database_url, max_connections=2)
    except (DomainError, ValueError, OSError, SchemaTooNewError, DatabaseInUseError) as exc:
        print(f"{PROG}: cannot open the database: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(args, store, ApiKeys(store, clock=utc_now), sys.stdout)
    except DomainError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _operator(tenant: str) -> Caller:
    """Whoever runs the CLI: an admin of ``tenant`` (they hold the database itself)."""
    return Caller(tenant=tenant, subject=f"cli:{getpass.getuser()}", scopes=ALL_SCOPES)


def _run(args: argparse.Namespace, store: PeeweeMetadataStore, keys: ApiKeys, out: TextIO) -> int:
    if args.command == "create":
        expire = None
        if args.expire_days is not None:
            expire = utc_now() + timedelta(days=args.expire_days)
        created = keys.create(_operator(args.tenant), args.name, args.scopes, expire)
        if args.json:
            print(json.dumps({**_document(created.key), "secret": created.credential}), file=out)
        else:
            print(created.credential, file=out)
            print(
                f"created {api_key_name(created.key.key_id)} in tenant {created.key.tenant} "
                f"({' '.join(sorted(created.key.scopes))}); the secret above is shown only now",
                file=sys.stderr,
            )
        return 0
    if args.command == "list":
        listed: list[ApiKey] = []
        token = ""
        while True:
            page, token = keys.list_keys(_operator(args.tenant), page_size=1000, page_token=token)
            listed.extend(page)
            if not token:
                break
        if args.json:
            print(json.dumps([_document(k) for k in listed], indent=2), file=out)
        else:
            _table([_row(k) for k in listed], out)
        return 0
    key_id = parse_api_key_name(args.key_id, "key_id")
    found = store.get_api_key(key_id)
    if found is None:
        raise NotFound(f"API key {key_id!r} does not exist", reason=Reason.API_KEY_NOT_FOUND)
    revoked = keys.revoke(_operator(found.tenant), key_id)
    if args.json:
        print(json.dumps(_document(revoked)), file=out)
    else:
        print(f"revoked {api_key_name(key_id)} at {_time(revoked.revoke_time)}", file=out)
    return 0


def _time(value: datetime | None) -> str:
    return "" if value is None else value.isoformat().replace("+00:00", "Z")


def _document(key: ApiKey) -> dict[str, Any]:
    return {
        "name": api_key_name(key.key_id),
        "key_id": key.key_id,
        "display_name": key.name,
        "tenant": key.tenant,
        "scopes": sorted(key.scopes),
        "created_by": key.created_by,
        "create_time": _time(key.create_time),
        "expire_time": _time(key.expire_time),
        "revoke_time": _time(key.revoke_time),
        "last_use_time": _time(key.last_used_time),
    }


def _row(key: ApiKey) -> tuple[str, ...]:
    return (
        key.key_id,
        key.name,
        key.tenant,
        ",".join(sorted(key.scopes)),
        _time(key.create_time),
        _time(key.expire_time) or "-",
        _time(key.revoke_time) or "-",
        _time(key.last_used_time) or "-",
    )


def _table(rows: list[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
    for row in [_COLUMNS, *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)
