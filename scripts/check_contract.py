"""Check proto/ against the last released contract (proto/releases/v1.binpb).

Two checks, both run by ``make buf-breaking`` (part of ``make check``):

1. ``buf breaking`` (buf.yaml's rules, FILE): wire, JSON and generated-code compatibility.
2. What buf does not check: a field must not gain REQUIRED, IMMUTABLE, OUTPUT_ONLY or IDENTIFIER
   (a call valid against the release would be refused, or a value it sets ignored), a resource
   keeps its type and every pattern, and a resource reference keeps its target.

At a release, ``make contract-release`` records proto/ as the new baseline.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from google.api import field_behavior_pb2, resource_pb2
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
RELEASED = Path("proto") / "releases" / "v1.binpb"
PACKAGE_PATH = "proto/modelregistry"
PACKAGE_PREFIX = "modelregistry/"
# Behaviours that restrict what a caller may send: gaining one breaks a caller of the release.
RESTRICTING = frozenset(
    {
        field_behavior_pb2.REQUIRED,
        field_behavior_pb2.IMMUTABLE,
        field_behavior_pb2.OUTPUT_ONLY,
        field_behavior_pb2.IDENTIFIER,
    }
)


def _messages(
    files: descriptor_pb2.FileDescriptorSet,
) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
    """Every message of the registry's own files, by full name (nested ones too)."""

    def walk(
        prefix: str, messages: list[descriptor_pb2.DescriptorProto]
    ) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
        for message in messages:
            name = f"{prefix}.{message.name}"
            yield name, message
            yield from walk(name, list(message.nested_type))

    for file in files.file:
        if file.name.startswith(PACKAGE_PREFIX):
            yield from walk(file.package, list(file.message_type))


def _behaviours(field: descriptor_pb2.FieldDescriptorProto) -> set[int]:
    return set(field.options.Extensions[field_behavior_pb2.field_behavior])


def tightenings(
    released: descriptor_pb2.FileDescriptorSet, current: descriptor_pb2.FileDescriptorSet
) -> list[str]:
    """What ``current`` restricts compared with ``released`` (empty: nothing)."""
    now = dict(_messages(current))
    found: list[str] = []
    for name, before in _messages(released):
        after = now.get(name)
        if after is None:
            continue  # a removed message is buf breaking's to report
        old_resource = before.options.Extensions[resource_pb2.resource]
        new_resource = after.options.Extensions[resource_pb2.resource]
        if old_resource.type and (
            new_resource.type != old_resource.type
            or not set(old_resource.pattern) <= set(new_resource.pattern)
        ):
            found.append(
                f"{name}: resource {old_resource.type} {list(old_resource.pattern)} became "
                f"{new_resource.type or 'none'} {list(new_resource.pattern)}"
            )
        fields = {field.number: field for field in after.field}
        for old in before.field:
            new = fields.get(old.number)
            if new is None:
                continue
            gained = (_behaviours(new) - _behaviours(old)) & RESTRICTING
            if gained:
                names = ", ".join(sorted(field_behavior_pb2.FieldBehavior.Name(b) for b in gained))
                found.append(f"{name}.{new.name}: gained field behaviour {names}")
            old_ref = old.options.Extensions[resource_pb2.resource_reference]
            new_ref = new.options.Extensions[resource_pb2.resource_reference]
            if (old_ref.type, old_ref.child_type) != ("", "") and (
                (old_ref.type, old_ref.child_type) != (new_ref.type, new_ref.child_type)
            ):
                found.append(f"{name}.{new.name}: resource reference changed")
    return found


def _read(path: Path) -> descriptor_pb2.FileDescriptorSet:
    # A buf image is wire-compatible with a FileDescriptorSet (its extra fields are kept unknown).
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


def check(root: Path, against: Path, buf: Path) -> int:
    """Run both checks on the tree at ``root``; print what fails; 0 if compatible."""
    with tempfile.TemporaryDirectory() as tmp:
        current = Path(tmp) / "current.binpb"
        subprocess.run([buf, "build", "--path", PACKAGE_PATH, "-o", current], cwd=root, check=True)
        breaking = ["breaking", current, "--against", against, "--exclude-imports"]
        broken = subprocess.run(
            [buf, *breaking, "--config", "buf.yaml"],
            cwd=root,
            check=False,
        ).returncode
        tightened = tightenings(_read(against), _read(current))
    for line in tightened:
        print(f"{PACKAGE_PATH}: {line}")
    if broken or tightened:
        print(f"proto/ is not compatible with the released contract {against}")
        return 1
    print(f"proto/ is compatible with the released contract {against}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=ROOT, help="tree holding buf.yaml")
    parser.add_argument("--against", type=Path, default=ROOT / RELEASED)
    parser.add_argument("--buf", type=Path, default=ROOT / "node_modules" / ".bin" / "buf")
    ns = parser.parse_args()
    return check(ns.root.resolve(), ns.against.resolve(), ns.buf.absolute())


if __name__ == "__main__":
    sys.exit(main())
