"""The per-database page token secret: made once by the migration, the same for every opener."""

from __future__ import annotations

from pathlib import Path

from modelregistry_server.storage.metadata import open_metadata_store
from tests.support.metadata_fixtures import sqlite_url


def test_secret_is_made_once_and_shared(metadata_url: str) -> None:
    first = open_metadata_store(metadata_url)
    second = open_metadata_store(metadata_url)  # another replica, or a restart
    try:
        secret = first.page_token_secret()
        assert len(secret) == 32
        assert second.page_token_secret() == secret
    finally:
        first.close()
        second.close()


def test_databases_have_their_own_secret(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = open_metadata_store(sqlite_url(tmp_path / "a"))
    b = open_metadata_store(sqlite_url(tmp_path / "b"))
    try:
        assert a.page_token_secret() != b.page_token_secret()
    finally:
        a.close()
        b.close()
