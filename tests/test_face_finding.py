"""Finding the main face: pyramid for small faces, confirmation against false faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import DATA, MODEL_DIR

from service.vision.detection import Detection, FaceDetector, iou, tile_origins
from service.vision.faces import FaceSearchSettings, find_faces, refine
from service.vision.presence import FacePresence
from service.vision.shrink import shrink


@pytest.fixture(scope="module")
def search():
    detector = FaceDetector(MODEL_DIR / "face_detection_yunet_2023mar_int8bq.onnx")
    presence = FacePresence()

    def run(img: np.ndarray, **overrides):
        return find_faces(detector, presence, img, FaceSearchSettings(**overrides))

    yield run
    presence.close()


def read(path: str) -> np.ndarray:
    return cv2.imread(str(DATA / path))


@pytest.mark.parametrize("face_px", [40, 64])
def test_small_face_in_a_4000_px_photo_is_found(search, face_px):
    backdrop = cv2.resize(read("id_documents/100_pass-bdr.jpg")[900:, :1000], (4000, 3000))
    head = read("faces/face_recognition/obama__obama.jpg")[40:480, 330:650]
    small = cv2.resize(head, None, fx=face_px / 240, fy=face_px / 240,
                       interpolation=cv2.INTER_AREA)
    backdrop[2000:2000 + small.shape[0], 3000:3000 + small.shape[1]] = small
    result = search(backdrop)
    assert len(result.faces) == 1
    x, y, w, h = result.faces[0].box
    assert 3000 <= x + w / 2 <= 3000 + small.shape[1] and 2000 <= y + h / 2 <= 2000 + small.shape[0]
    assert 0.7 * face_px <= w <= 1.4 * face_px


def test_painted_false_face_behind_a_person_is_not_counted(search):
    # biden2.jpg: YuNet also sees a "face" in the landscape painting top left
    # at these sizes YuNet scores the painting 0.59-0.69; let all of them through
    for sides in [(640,), (1600,)]:
        result = search(read("faces/face_recognition/biden__biden2.jpg"), detect_sides=sides,
                        face_score=0.5)
        assert len(result.faces) == 1 and result.candidates >= 2, sides


def test_guilloche_false_faces_of_the_bdr_specimen_are_not_used(search, labels):
    doc = next(d for d in labels["id_documents"] if d["path"].endswith("bdr.jpg"))
    img = read(doc["path"])
    result = search(img)
    assert iou(result.faces[0].box, tuple(doc["portrait_box"])) >= 0.5
    # even when forced to look at full resolution, where the false faces score 0.6-0.77
    full = search(img, detect_sides=(4000,))
    assert full.candidates >= 3
    assert iou(full.faces[0].box, tuple(doc["portrait_box"])) >= 0.5
    assert all(f.box[0] < 1000 for f in full.faces)  # nothing in the lower right


def test_group_photo_counts_both_people(search, labels):
    entry = labels["multi_face_images"][0]
    assert len(search(read(entry["path"])).faces) == entry["faces"]


def test_czech_passport_main_portrait_is_larger_than_its_ghost(search):
    result = search(read("id_documents/100_pass-cze.jpg"))
    assert len(result.faces) == 2
    assert result.faces[0].area > 5 * result.faces[1].area


def test_tiles_cover_a_large_pass_with_overlap():
    assert tile_origins(1200, 1600, 256) == [0]
    for length in (1601, 3000, 4000):
        starts = tile_origins(length, 1600, 256)
        assert starts[0] == 0 and starts[-1] == length - 1600
        assert all(0 < b - a <= 1600 - 256 for a, b in zip(starts, starts[1:]))
    assert len(tile_origins(4000, 1600, 256)) == 3  # no more tiles than needed


def test_a_small_face_on_a_tile_border_is_found_once(search):
    """The 4000 px pass runs in 1600 px tiles (bounded detector memory); a face where
    two tiles overlap is found, and only once."""
    backdrop = cv2.resize(read("id_documents/100_pass-bdr.jpg")[900:, :1000], (4000, 3000))
    head = read("faces/face_recognition/obama__obama.jpg")[40:480, 330:650]
    small = cv2.resize(head, None, fx=48 / 240, fy=48 / 240, interpolation=cv2.INTER_AREA)
    x0, y0 = 1400, 1380  # where the first two tile columns (0, 1200) and rows (0, 700) overlap
    backdrop[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    result = search(backdrop)
    assert len(result.faces) == 1
    x, y, w, h = result.faces[0].box
    assert x0 <= x + w / 2 <= x0 + small.shape[1] and y0 <= y + h / 2 <= y0 + small.shape[0]


def test_a_face_located_by_landmarks_gets_the_detectors_box_from_a_crop(search):
    """A stream's best frame: the face refined in a crop around a rough box (here the
    detector's own box shifted and grown by 10%) is the face the whole-frame search
    confirms, within a few pixels; a box where no face is gives None."""
    img = read("spoof/live_frames/000001M.jpg")
    full = search(img).faces[0]
    x, y, w, h = full.box
    rough = Detection((x + 0.05 * w, y - 0.05 * h, 1.1 * w, 1.1 * h), full.landmarks, 1.0)
    detector = FaceDetector(MODEL_DIR / "face_detection_yunet_2023mar_int8bq.onnx")
    refined = refine(detector, img, rough, FaceSearchSettings())
    assert refined is not None
    assert iou(refined.face.box, full.box) > 0.85
    assert np.abs(refined.face.landmarks - full.landmarks).max() < 0.05 * w
    nowhere = Detection((5.0, 5.0, 30.0, 30.0), full.landmarks, 1.0)
    assert refine(detector, img, nowhere, FaceSearchSettings()) is None


@pytest.mark.parametrize("side", [320, 256, 1600, 611])
def test_shrink_averages_like_inter_area(side):
    img = read("faces/face_recognition/alex_lacamoire__img1.jpg")
    img = cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2)) if side > 1000 else img
    h, w = img.shape[:2]
    size = (round(w * side / max(h, w)), round(h * side / max(h, w)))
    ours, theirs = shrink(img, size), cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    assert ours.shape == theirs.shape
    assert np.abs(ours.astype(np.int16) - theirs).mean() < 3.0
