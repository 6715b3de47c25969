"""A first end-to-end pass: create, version, upload, seal, alias, download."""

from __future__ import annotations

import io

from modelregistry.client import RegistryClient


def test_round_trip(client: RegistryClient) -> None:
    client.create_model("fraud", display_name="Fraud")
    v = client.create_version("fraud", metrics={"auc": 0.9})
    data = b"x" * 300_000
    f = client.upload_file("fraud", v.version_number, io.BytesIO(data))
    assert f.size_bytes == len(data)
    client.seal_version("fraud", v.version_number)
    client.set_alias("fraud", "production", v.version_number)
    out = io.BytesIO()
    client.download_file("fraud", "production", out)
    assert out.getvalue() == data
    assert client.get_version("fraud", "latest").version_number == 1
