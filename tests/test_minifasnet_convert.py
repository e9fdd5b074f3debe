"""MiniFASNet .pth -> ONNX conversion without torch: reading, determinism, behaviour.

The numerical match against the publisher's PyTorch code was checked once outside this
suite (torch is not a project dependency): max abs logit difference ~4e-6.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from conftest import DATA, MODEL_DIR, SHARED

from models.legacy_torch import LegacyFormatError, load_legacy_state_dict
from models.minifasnet import convert

WEIGHTS = SHARED / "models" / "minifasnet"
# file stem -> (publisher's crop scale, state_dict entries, float parameters, SE blocks)
MODELS = {
    "2.7_80x80_MiniFASNetV2": (2.7, 334, 444_928, 0),
    "4_0_0_80x80_MiniFASNetV1SE": (4.0, 370, 444_554, 3),
}
SAMPLES = {"image_T1.jpg": "live", "image_F1.jpg": "spoof", "image_F2.jpg": "spoof"}


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out_dir = tmp_path_factory.mktemp("minifasnet")
    files = {}
    for stem in MODELS:
        files[stem] = out_dir / f"{stem}.onnx"
        convert(WEIGHTS / f"{stem}.pth", files[stem])
    return files


@pytest.mark.parametrize("stem", MODELS)
def test_reads_legacy_state_dict(stem: str) -> None:
    _, entries, floats, se_blocks = MODELS[stem]
    state = load_legacy_state_dict(WEIGHTS / f"{stem}.pth")
    assert len(state) == entries
    assert not any(k.startswith("module.") for k in state)
    assert sum(v.size for v in state.values() if v.dtype == np.float32) == floats
    assert sum(k.endswith("se_module.fc1.weight") for k in state) == se_blocks
    assert state["conv1.conv.weight"].shape == (32, 3, 3, 3)
    assert state["conv_6_dw.conv.weight"].shape == (512, 1, 5, 5)
    assert state["linear.weight"].shape == (128, 512)
    assert state["prob.weight"].shape == (3, 128)
    assert state["conv1.bn.num_batches_tracked"].dtype == np.int64
    assert np.isfinite(state["conv_6_sep.bn.running_var"]).all()


def test_refuses_foreign_globals(tmp_path: Path) -> None:
    """These are pickles: anything but tensors in an OrderedDict must not be resolved."""
    path = tmp_path / "evil.pth"
    with path.open("wb") as fh:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, fh, protocol=2)
        fh.write(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.")  # os.system("true")
    with pytest.raises(LegacyFormatError, match="os.system"):
        load_legacy_state_dict(path)


def test_conversion_is_deterministic(tmp_path: Path, onnx_files: dict[str, Path]) -> None:
    for stem, first in onnx_files.items():
        again = tmp_path / f"{stem}.onnx"
        convert(WEIGHTS / f"{stem}.pth", again)
        assert again.read_bytes() == first.read_bytes()


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("stem", MODELS)
def test_runs_in_onnxruntime(stem: str, onnx_files: dict[str, Path]) -> None:
    session = _session(onnx_files[stem])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, out.name, out.shape) == ("input", [1, 3, 80, 80], "logits", [1, 3])
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 80, 80)).astype(np.float32)
    (logits,) = session.run(["logits"], {"input": x})
    assert logits.shape == (1, 3) and logits.dtype == np.float32 and np.isfinite(logits).all()


def _publisher_crop(image: np.ndarray, box: tuple[int, int, int, int], scale: float,
                    size: int = 80) -> np.ndarray:
    """Silent-Face-Anti-Spoofing src/generate_patches.py CropImage._get_new_box + crop."""
    src_h, src_w = image.shape[:2]
    x, y, w, h = box
    scale = min((src_h - 1) / h, (src_w - 1) / w, scale)
    cx, cy = x + w / 2, y + h / 2
    left, top = cx - w * scale / 2, cy - h * scale / 2
    right, bottom = cx + w * scale / 2, cy + h * scale / 2
    if left < 0:
        right, left = right - left, 0
    if top < 0:
        bottom, top = bottom - top, 0
    if right > src_w - 1:
        left, right = left - (right - src_w + 1), src_w - 1
    if bottom > src_h - 1:
        top, bottom = top - (bottom - src_h + 1), src_h - 1
    left, top, right, bottom = int(left), int(top), int(right), int(bottom)
    return cv2.resize(image[top:bottom + 1, left:right + 1], (size, size))


def test_sample_images_as_the_publisher_scores_them(onnx_files: dict[str, Path]) -> None:
    from service.vision.detection import FaceDetector

    detector = FaceDetector(MODEL_DIR / "face_detection_yunet_2023mar_int8bq.onnx")
    sessions = {MODELS[stem][0]: _session(path) for stem, path in onnx_files.items()}
    real = {}
    for name in SAMPLES:
        image = cv2.imread(str(DATA / "spoof" / "silent_face" / name))
        face = max(detector(image), key=lambda d: d.area)
        box = tuple(int(v) for v in face.box)
        probs = []
        for scale, session in sessions.items():
            patch = _publisher_crop(image, box, scale)  # BGR, 0-255, no normalisation
            x = patch.transpose(2, 0, 1)[None].astype(np.float32)
            (logits,) = session.run(["logits"], {"input": x})
            e = np.exp(logits[0] - logits[0].max())
            probs.append(e / e.sum())
        real[name] = float(np.mean(probs, axis=0)[1])  # class 1 = real
    judged = {name: "live" if p > 0.5 else "spoof" for name, p in real.items()}
    assert judged == SAMPLES, real
