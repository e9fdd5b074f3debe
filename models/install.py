"""Install every model file of the manifest into the model directory, verified.

Lookup order per file: already installed with the right sha256; a local copy under
--source-dir (this workplace's `../shared/models/`, or any mirror laid out the same way or
flat); the PyPI wheel that ships it (`pip download --no-deps`, then only that member is
extracted, so the wheel's own dependencies never enter the environment); the canonical
public URL. Whatever arrives must match the manifest's sha256. Nothing here runs at
service run time: the service only verifies (models.manifest.resolve_models).
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from models.manifest import (
    ModelEntry,
    ModelError,
    expected_path,
    load_manifest,
    sha256_of,
    verify_file,
)


def _accept(entry: ModelEntry, candidate: Path, dest: Path) -> bool:
    if not candidate.is_file() or sha256_of(candidate) != entry.sha256:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    shutil.copyfile(candidate, tmp)
    tmp.replace(dest)
    return True


def _from_source_dir(entry: ModelEntry, source_dir: Path | None, dest: Path) -> bool:
    if source_dir is None:
        return False
    candidates = [source_dir / entry.file]
    if entry.source.path:
        candidates.insert(0, source_dir / entry.source.path)
    return any(_accept(entry, c, dest) for c in candidates)


def _from_wheel(entry: ModelEntry, cache_dir: Path, dest: Path) -> bool:
    src = entry.source
    if src.kind != "wheel":
        return False
    wheel_dir = cache_dir / f"{src.package}-{src.version}"
    wheels = list(wheel_dir.glob("*.whl"))
    if not wheels:
        wheel_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary", ":all:", "-d", str(wheel_dir), f"{src.package}=={src.version}"]
        if subprocess.run(cmd, check=False).returncode != 0:
            return False
        wheels = list(wheel_dir.glob("*.whl"))
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf, tempfile.TemporaryDirectory() as tmp:
            if src.member not in zf.namelist():
                continue
            extracted = Path(zf.extract(src.member, tmp))
            if _accept(entry, extracted, dest):
                return True
    return False


def _from_url(entry: ModelEntry, dest: Path) -> bool:
    if not entry.url:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / entry.file
        try:
            with urllib.request.urlopen(entry.url, timeout=60) as resp, target.open("wb") as fh:
                shutil.copyfileobj(resp, fh)
        except OSError as exc:
            print(f"  {entry.name}: could not fetch {entry.url}: {exc}", file=sys.stderr)
            return False
        return _accept(entry, target, dest)


def _derive(entry: ModelEntry, entries: dict[str, ModelEntry], model_dir: Path,
            dest: Path) -> bool:
    """Build a file from another entry with the builder the manifest names."""
    parent = entries[entry.source.derived_from]
    builder = importlib.import_module(entry.source.builder)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / entry.file
        builder.convert(expected_path(parent, model_dir), out)
        return _accept(entry, out, dest)


def install(model_dir: Path, source_dir: Path | None) -> None:
    entries = {e.name: e for e in load_manifest()}
    cache_dir = model_dir / ".cache"
    for entry in entries.values():
        dest = expected_path(entry, model_dir)
        if dest.is_file() and sha256_of(dest) == entry.sha256:
            print(f"  {entry.name}: ok ({dest.name})")
            continue
        if entry.source.kind == "installed":
            verify_file(entry, dest)  # comes with the package itself; only checked here
            continue
        if entry.source.kind == "derived":
            done = _derive(entry, entries, model_dir, dest)
        else:
            done = (_from_source_dir(entry, source_dir, dest)
                    or _from_wheel(entry, cache_dir, dest)
                    or _from_url(entry, dest))
        if not done:
            raise ModelError(
                f"model {entry.name!r}: no source gave {entry.file} with sha256 "
                f"{entry.sha256} (looked in {source_dir}, {entry.source.package or '-'}, "
                f"{entry.url or '-'})"
            )
        print(f"  {entry.name}: installed {dest}")
    shutil.rmtree(cache_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path(".models"))
    parser.add_argument("--source-dir", type=Path, default=None,
                        help="local directory searched before packages and URLs")
    args = parser.parse_args()
    source_dir = args.source_dir if args.source_dir and args.source_dir.is_dir() else None
    try:
        install(args.dest, source_dir)
    except ModelError as exc:
        sys.exit(f"model installation failed: {exc}")


if __name__ == "__main__":
    main()
