"""The model manifest: every file verified by sha256, bad files named clearly."""

from __future__ import annotations

import shutil

import pytest
from conftest import MODEL_DIR

from models.manifest import ModelError, load_manifest, resolve_models


def test_every_entry_names_source_licence_url_and_hash():
    entries = load_manifest()
    assert {"face_detector", "face_embedder", "face_landmarker"} <= {e.name for e in entries}
    for e in entries:
        assert len(e.sha256) == 64 and e.licence and e.url.startswith("https://")
        assert e.source.kind in {"installed", "wheel", "shared", "derived"}


def test_installed_models_verify():
    paths = resolve_models(MODEL_DIR)
    assert all(p.is_file() for p in paths.values())


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ModelError, match="face_detection_yunet.*missing"):
        resolve_models(tmp_path, ["face_detector"])


def test_altered_file_is_named_with_both_hashes(tmp_path):
    entry = next(e for e in load_manifest() if e.name == "face_detector")
    shutil.copy(MODEL_DIR / entry.file, tmp_path / entry.file)
    with (tmp_path / entry.file).open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match=f"face_detector.*expects {entry.sha256}"):
        resolve_models(tmp_path, ["face_detector"])
