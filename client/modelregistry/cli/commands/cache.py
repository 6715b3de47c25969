"""``modelregistry cache list|prune|verify``: the local cache of pulled versions
(:class:`modelregistry.client.Cache`; MODELREGISTRY_CACHE_DIR, default ~/.cache/modelregistry).
None of them talks to the server."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import click

from modelregistry.cli.exits import ExitCode
from modelregistry.cli.output import Table
from modelregistry.cli.session import Session, pass_session
from modelregistry.client import Cache, CachedVersion

__all__ = ["cache"]

_AGE = re.compile(r"(\d+)([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"(\d+)\s*([KMGT]i?B?|B)?", re.IGNORECASE)


def _age(text: str) -> timedelta:
    found = _AGE.fullmatch(text.strip())
    if not found:
        raise click.BadParameter(f"{text!r}: write a number and s, m, h, d or w (30d)")
    return timedelta(seconds=int(found.group(1)) * _SECONDS[found.group(2)])


def _bytes(text: str) -> int:
    found = _SIZE.fullmatch(text.strip())
    if not found:
        raise click.BadParameter(f"{text!r}: write bytes, or a number with KiB, MiB, GiB")
    unit = (found.group(2) or "B").upper()[:1]
    return int(found.group(1)) * {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(
        unit, 1 << 40
    )


def version_data(v: CachedVersion) -> dict[str, Any]:
    return {
        "registry": v.registry,
        "name": v.name,
        "manifest_digest": v.manifest_digest,
        "files": len(v.files),
        "size_bytes": v.size_bytes,
        "last_used": v.last_used.isoformat().replace("+00:00", "Z"),
        "complete": v.complete,
    }


@click.group()
def cache() -> None:
    """The local cache of pulled versions: list, prune, verify (no server needed)."""


@cache.command("list")
@pass_session
def list_cache(session: Session) -> None:
    """Cached versions, most recently used first (JSON: {"path", "size_bytes", "versions"})."""
    store = Cache()
    versions = [version_data(v) for v in store.list()]
    rows = [
        (v["registry"], v["name"], str(v["files"]), str(v["size_bytes"]), v["last_used"][:19],
         "yes" if v["complete"] else "NO")
        for v in versions
    ]  # fmt: skip
    data = {"path": str(store.root), "size_bytes": store.size_bytes(), "versions": versions}
    session.output.result(
        data, Table(("registry", "version", "files", "bytes", "last used", "complete"), rows)
    )


@cache.command("prune")
@click.option("--older-than", metavar="AGE", help="Forget versions not used for AGE (30d, 12h).")
@click.option("--max-size", metavar="SIZE", help="Then keep the most recently used within SIZE.")
@click.option("--all", "everything", is_flag=True, help="Forget every cached version.")
@pass_session
def prune_cache(
    session: Session, older_than: str | None, max_size: str | None, everything: bool
) -> None:
    """Remove what no remaining cached version uses (contents, partial downloads, snapshots),
    after forgetting the versions --older-than / beyond --max-size. Waits for running pulls."""
    report = Cache().prune(
        older_than=_age(older_than) if older_than else None,
        max_bytes=0 if everything else (_bytes(max_size) if max_size else None),
    )
    data = {
        "versions": list(report.versions),
        "blobs": report.blobs,
        "partials": report.partials,
        "freed_bytes": report.freed_bytes,
    }
    rows = [
        ("versions forgotten", str(len(report.versions))),
        ("contents removed", str(report.blobs)),
        ("partial downloads removed", str(report.partials)),
        ("bytes freed", str(report.freed_bytes)),
    ]
    session.output.result(data, Table(("field", "value"), rows))


@cache.command("verify")
@pass_session
def verify_cache(session: Session) -> int:
    """Re-hash every cached content; remove (and report) those that do not match, so the
    next pull fetches them again. Exit status 1 if anything was found."""
    report = Cache().verify()
    data = {
        "ok": report.ok,
        "checked_blobs": report.checked_blobs,
        "checked_bytes": report.checked_bytes,
        "corrupt": [
            {
                "sha256": c.sha256,
                "actual_sha256": c.actual_sha256,
                "size_bytes": c.size_bytes,
                "versions": list(c.versions),
            }
            for c in report.corrupt
        ],
        "incomplete": list(report.incomplete),
        "bad_manifests": list(report.bad_manifests),
    }
    rows = [("CORRUPT", c.sha256, ", ".join(c.versions)) for c in report.corrupt]
    rows += [("INCOMPLETE", "", v) for v in report.incomplete]
    rows += [("BAD RECORD", path, "") for path in report.bad_manifests]
    session.output.note(
        f"checked {report.checked_blobs} contents ({report.checked_bytes} bytes): "
        + ("ok" if report.ok else "problems found (removed; the next pull fetches them again)")
    )
    if rows:
        session.output.result(data, Table(("problem", "content", "cached versions"), rows))
    else:
        session.output.result(data, Table(("field", "value"), [("ok", "true")]))
    return 0 if report.ok else int(ExitCode.FAILURE)
