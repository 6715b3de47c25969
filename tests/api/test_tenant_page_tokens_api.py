"""Page tokens belong to the tenant they were issued in: a token minted by a caller of one
tenant, replayed by a caller of another on the very same query, is INVALID_PAGE_TOKEN
instead of positioning the other tenant's listing (through the shipped client, JWT tenants)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelregistry.client import InvalidArgumentError, RegistryClient
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.api.registry_helpers import expect_error
from tests.support.jwt_tokens import EVERY_SCOPE, as_caller, jwt_config, mint, rsa_key
from tests.support.servers import serving

Page = Callable[[RegistryClient, str], str]

PAGES: dict[str, Page] = {
    "models": lambda c, t: c.list_models_page(page_size=1, page_token=t).next_page_token,
    "versions": lambda c, t: c.list_versions_page("-", page_size=1, page_token=t).next_page_token,
    "files": lambda c, t: c.list_files_page("a", 1, page_size=1, page_token=t).next_page_token,
}


@pytest.fixture
def jwt_server(server_config: Config, tmp_path: Path) -> Iterator[RegistryServer]:
    with serving(jwt_config(server_config, tmp_path)) as service:
        yield service


def _fill(client: RegistryClient) -> None:
    for model in ("a", "b", "c"):
        client.create_model(model)
        client.create_version(model)
    for file_id in ("f1", "f2", "f3"):
        client.upload_file("a", 1, io.BytesIO(b"x"), file_id=file_id)


@pytest.mark.parametrize("listing", list(PAGES))
def test_a_page_token_of_another_tenant_is_refused(
    jwt_server: RegistryServer, listing: str
) -> None:
    page = PAGES[listing]
    with (
        as_caller(jwt_server, mint(rsa_key(), scope=EVERY_SCOPE, tenant="acme")) as acme,
        as_caller(jwt_server, mint(rsa_key(), scope=EVERY_SCOPE, tenant="globex")) as globex,
    ):
        _fill(acme)
        _fill(globex)
        token = page(acme, "")
        assert token
        assert page(acme, token)  # valid in its own tenant
        with expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN", field="page_token"):
            page(globex, token)
