"""Generate the Python stubs of proto/modelregistry/v1 into the client package.

The stubs are committed so the client installs without grpcio-tools; ``--check`` regenerates
into a temporary directory and fails if anything differs from what is committed (CI runs it).
The vendored google.api / google.rpc protos under third_party/proto are only imported: their
Python modules come from googleapis-common-protos at run time, so none are generated here.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
THIRD_PARTY = ROOT / "third_party" / "proto"
PACKAGE = Path("modelregistry") / "v1"


def generate(out: Path) -> None:
    """Run protoc (python, grpc and mypy .pyi outputs) for every .proto of the package."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    bin_dir = Path(sys.executable).parent
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTO_ROOT}",
        f"-I{THIRD_PARTY}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out / PACKAGE / "__init__.py").write_text('"""Generated stubs of modelregistry.v1."""\n')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "client")
    parser.add_argument("--check", action="store_true", help="fail if committed stubs differ")
    ns = parser.parse_args()
    target = ns.out / PACKAGE
    if not ns.check:
        for old in target.glob("*_pb2*.py*"):
            old.unlink()
        target.mkdir(parents=True, exist_ok=True)
        generate(ns.out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / PACKAGE
        names = {p.name for p in fresh.iterdir()} | {
            p.name for p in target.iterdir() if p.suffix in (".py", ".pyi")
        }
        stale = sorted(
            n
            for n in names
            if not (fresh / n).exists()
            or not (target / n).exists()
            or not filecmp.cmp(fresh / n, target / n, shallow=False)
        )
    if stale:
        print("generated stubs are out of date (run `make stubs`):", *stale, sep="\n  ")
        return 1
    print("generated stubs match proto/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
