"""The model manifest and the resolver that finds and verifies each file at start-up.

Why a manifest: every weight file the service runs must be traceable (which package or
URL, which licence) and must be exactly the bytes we measured with, so the service
refuses to start on a missing or altered file instead of quietly giving other answers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_PATH = Path(__file__).with_name("manifest.toml")


class ModelError(RuntimeError):
    """A model file is missing, unreadable or not the bytes the manifest names."""


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "installed" | "wheel" | "shared" | "derived"
    package: str = ""
    version: str = ""
    member: str = ""
    path: str = ""
    derived_from: str = ""
    builder: str = ""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    sha256: str
    licence: str
    url: str
    input_size: str
    source: ModelSource
    note: str = ""


def load_manifest(path: Path = MANIFEST_PATH) -> list[ModelEntry]:
    raw: dict[str, Any] = tomllib.loads(path.read_text())
    entries = []
    for item in raw.get("model", []):
        src = dict(item["source"])
        if "from" in src:
            src["derived_from"] = src.pop("from")
        entries.append(
            ModelEntry(
                name=item["name"],
                file=item["file"],
                sha256=item["sha256"].lower(),
                licence=item["licence"],
                url=item.get("url", ""),
                input_size=item.get("input_size", ""),
                note=item.get("note", ""),
                source=ModelSource(**src),
            )
        )
    return entries


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def installed_package_file(entry: ModelEntry) -> Path:
    """Where an `installed` entry lives inside its package in site-packages."""
    spec = importlib.util.find_spec(entry.source.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"model {entry.name!r}: package {entry.source.package}=={entry.source.version} "
            "is not installed (run `make install`)"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    relative = entry.source.member.split("/", 1)[1]
    return package_dir / relative


def expected_path(entry: ModelEntry, model_dir: Path) -> Path:
    if entry.source.kind == "installed":
        return installed_package_file(entry)
    return model_dir / entry.file


def verify_file(entry: ModelEntry, path: Path) -> None:
    if not path.is_file():
        raise ModelError(
            f"model {entry.name!r}: file {path} is missing "
            f"(expected sha256 {entry.sha256}); run `make models` to install it"
        )
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise ModelError(
            f"model {entry.name!r}: file {path} has sha256 {actual}, "
            f"the manifest expects {entry.sha256}; delete it and run `make models`"
        )


def resolve_models(model_dir: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Return {model name: verified path}; raise ModelError naming the first bad file."""
    resolved: dict[str, Path] = {}
    for entry in load_manifest():
        if names is not None and entry.name not in names:
            continue
        path = expected_path(entry, model_dir)
        verify_file(entry, path)
        resolved[entry.name] = path
    if names is not None:
        missing = sorted(set(names) - set(resolved))
        if missing:
            raise ModelError(f"models {missing} are not in the manifest {MANIFEST_PATH}")
    return resolved
