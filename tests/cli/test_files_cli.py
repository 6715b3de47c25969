"""``files list|upload|download``: verified round trips, stdout downloads, and progress bars
that appear on a terminal (a pseudo-terminal here) and nowhere else."""

from __future__ import annotations

import hashlib
import os
import pty
import select
import subprocess
import time
from pathlib import Path

from modelregistry.client import RegistryClient
from tests.cli.conftest import SCRIPT, Cli, ready_version

MiB = 1 << 20


def _draft(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.create_version("fraud")


def test_upload_list_and_download_round_trip(
    cli: Cli, client: RegistryClient, tmp_path: Path
) -> None:
    _draft(client)
    source = tmp_path / "vocab.json"
    source.write_bytes(os.urandom(300_000))
    uploaded = cli("files", "upload", "fraud:1", str(source), "--file-id", "tokenizer/vocab.json",
                   "--content-type", "application/json", "-o", "json")  # fmt: skip
    assert uploaded.status == 0, uploaded.stderr
    assert uploaded.json()["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert cli("files", "upload", "fraud:1", str(source)).status == 0  # id "payload"
    cli("versions", "seal", "fraud:1")

    listed = cli("files", "list", "fraud:1", "-o", "json").json()
    assert [f["name"].split("/files/")[1] for f in listed["files"]] == [
        "payload",
        "tokenizer/vocab.json",
    ]
    assert listed["files"][1]["content_type"] == "application/json"
    everywhere = cli("files", "list", "-")
    assert everywhere.stdout.splitlines()[0].split()[:2] == ["version", "file"]

    dest = tmp_path / "out"
    dest.mkdir()
    downloaded = cli("files", "download", "fraud", "tokenizer/vocab.json", str(dest), "-o", "json")
    assert downloaded.status == 0, downloaded.stderr
    assert (dest / "vocab.json").read_bytes() == source.read_bytes()
    assert downloaded.json()["path"] == str(dest / "vocab.json")
    assert downloaded.stderr == ""

    # Default destination: the file id's base name in the working directory.
    work = tmp_path / "work"
    work.mkdir()
    assert cli("files", "download", "fraud:1", cwd=work).status == 0
    assert (work / "payload").read_bytes() == source.read_bytes()

    # "-" streams the bytes to stdout and nothing else.
    raw = subprocess.run(
        [str(SCRIPT), "files", "download", "fraud:latest", "payload", "-"],
        env=cli.env, capture_output=True, timeout=60,
    )  # fmt: skip
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout == source.read_bytes()

    missing = cli("files", "download", "fraud:1", "nope.bin", str(tmp_path / "nope.bin"))
    assert missing.status == 3
    assert not (tmp_path / "nope.bin").exists()
    # A local failure (the destination's directory does not exist) is "other": 1.
    unwritable = cli("files", "download", "fraud:1", "payload", str(tmp_path / "no" / "dir" / "x"))
    assert unwritable.status == 1, unwritable.stderr
    assert cli("files", "upload", "fraud:1", str(tmp_path / "absent.bin")).status == 2


def _on_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str, bytes]:
    """Run the script with stderr on a pseudo-terminal; its status, stderr and stdout."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(SCRIPT), *args],
        env={**env, "TERM": "xterm-256color"},
        stdout=subprocess.PIPE,
        stderr=follower,
        stdin=subprocess.DEVNULL,
    )
    os.close(follower)
    seen = bytearray()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process has exited
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    assert process.stdout is not None
    out = process.stdout.read()
    return process.wait(timeout=30), seen.decode(errors="replace"), out


def test_progress_bars_only_on_a_terminal(cli: Cli, client: RegistryClient, tmp_path: Path) -> None:
    _draft(client)
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(3 * MiB))
    status, terminal, _ = _on_a_terminal(cli.env, "files", "upload", "fraud:1", str(source))
    assert status == 0, terminal
    assert "↑ payload" in terminal
    assert "3.1/3.1 MB" in terminal  # bytes done / total
    assert "/s" in terminal  # rate
    assert "0:00:00" in terminal  # time left, at the end
    client.seal_version("fraud", 1)

    status, terminal, _ = _on_a_terminal(
        cli.env, "files", "download", "fraud:1", "payload", str(tmp_path / "back.bin")
    )
    assert status == 0, terminal
    assert "↓ payload" in terminal and "3.1/3.1 MB" in terminal
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()

    # The same commands with stderr on a pipe: no progress at all.
    quiet = cli("files", "download", "fraud:1", "payload", str(tmp_path / "again.bin"))
    assert quiet.status == 0 and quiet.stderr == ""
    assert "MB" not in quiet.stdout


def test_listing_a_version_of_another_model_by_alias(cli: Cli, client: RegistryClient) -> None:
    ready_version(client, "ads")
    client.set_alias("ads", "production", 1)
    listed = cli("files", "list", "ads@production", "-o", "json").json()
    assert [f["name"] for f in listed["files"]] == ["models/ads/versions/1/files/payload"]
