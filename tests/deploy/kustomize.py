"""A renderer for exactly the kustomize features deploy/kubernetes uses, so CI needs no binary.

``resources`` (files, and directories holding a kustomization), ``namespace``, ``images``
(name -> newName/newTag) and ``patches`` given as JSON 6902 operations (``path`` or inline
``patch``) with a ``target`` of kind and name. Anything else in a kustomization is refused
(:data:`SUPPORTED`), so a feature this does not implement cannot be silently ignored; where
kubectl is installed, tests/deploy/test_kubernetes.py also compares the output with
``kubectl kustomize``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

SUPPORTED = frozenset({"apiVersion", "kind", "resources", "namespace", "images", "patches"})
Manifest = dict[str, Any]


class UnsupportedKustomization(ValueError):
    """The kustomization uses something this renderer does not implement."""


def load_kustomization(directory: Path) -> Manifest:
    """The kustomization.yaml of ``directory``, checked against :data:`SUPPORTED`."""
    spec: Manifest = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise UnsupportedKustomization(f"{directory}: {sorted(unknown)}")
    for patch in spec.get("patches", []):
        if set(patch) - {"target", "path", "patch"} or set(patch["target"]) - {"kind", "name"}:
            raise UnsupportedKustomization(f"{directory}: patch {patch}")
    return spec


def render(directory: Path) -> list[Manifest]:
    """The resources ``directory``'s kustomization builds, in resource order."""
    spec = load_kustomization(directory)
    out: list[Manifest] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            out.extend(render(path))
        else:
            out.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for patch in spec.get("patches", []):
        raw = patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text()
        operations = jsonpatch.JsonPatch(yaml.safe_load(raw))
        target = patch["target"]
        hits = [i for i, r in enumerate(out) if _matches(r, target)]
        if len(hits) != 1:
            raise UnsupportedKustomization(f"patch target {target} matches {len(hits)} resources")
        out[hits[0]] = operations.apply(out[hits[0]])
    for image in spec.get("images", []):
        for container in _containers(out):
            _set_image(container, image)
    if "namespace" in spec:
        for resource in out:
            resource.setdefault("metadata", {})["namespace"] = spec["namespace"]
    return copy.deepcopy(out)


def _matches(resource: Manifest, target: dict[str, str]) -> bool:
    return all(
        (resource["kind"] if key == "kind" else resource["metadata"]["name"]) == value
        for key, value in target.items()
    )


def pod_specs(resources: list[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    """(resource, pod spec) of every Deployment and Job."""
    for resource in resources:
        if resource["kind"] in ("Deployment", "Job"):
            yield resource, resource["spec"]["template"]["spec"]


def _containers(resources: list[Manifest]) -> Iterator[Manifest]:
    for _, pod in pod_specs(resources):
        yield from pod.get("initContainers", [])
        yield from pod["containers"]


def _set_image(container: Manifest, image: dict[str, str]) -> None:
    name, _, tag = container["image"].partition(":")
    if name != image["name"]:
        return
    name = image.get("newName", name)
    tag = image.get("newTag", tag)
    container["image"] = f"{name}:{tag}" if tag else name
