"""FaceLandmarker's points: the 478-point model with attention by default (468 without),
and the fast read of the landmark list giving exactly the protobuf attributes' values."""

from __future__ import annotations

import numpy as np
from conftest import data_bytes
from mediapipe.framework.formats import landmark_pb2

from service.media.frames import decode_frames
from service.vision.landmarks import NUM_LANDMARKS, FaceLandmarker, _points


def attribute_walk(face: landmark_pb2.NormalizedLandmarkList) -> np.ndarray:
    return np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)


def test_points_of_a_real_face_equal_the_attributes_and_scale_to_pixels():
    frame = next(decode_frames(data_bytes("blink/zju/000002M_FNN.mp4"), 15.0, 640))
    landmarker = FaceLandmarker()
    try:
        faces = landmarker.detect(frame.image)
        rgb = np.ascontiguousarray(frame.image[:, :, ::-1])
        raw = landmarker._mesh.process(rgb).multi_face_landmarks[0]
    finally:
        landmarker.close()
    assert len(faces) == 1 and faces[0].shape == (NUM_LANDMARKS, 3) == (478, 3)
    fast = _points(raw)
    assert fast.dtype == np.float32 and np.array_equal(fast, attribute_walk(raw))
    h, w = frame.image.shape[:2]
    assert 0 < faces[0][:, 0].min() and faces[0][:, 0].max() < w
    assert 0 < faces[0][:, 1].min() and faces[0][:, 1].max() < h


def test_a_list_with_a_left_out_or_an_extra_field_takes_the_attribute_walk():
    face = landmark_pb2.NormalizedLandmarkList()
    for x, y, z in [(0.5, 0.25, -0.01), (0.0, 0.75, 0.02), (0.125, 0.5, 0.0)]:
        face.landmark.add(x=x, y=y, z=z)  # 0.0 is left out of the bytes
    face.landmark.add(x=0.3, y=0.4, z=0.1, visibility=0.9)  # an extra field
    assert np.array_equal(_points(face), attribute_walk(face))
    assert _points(face)[1, 0] == 0.0 and _points(face)[3, 2] == np.float32(0.1)


def test_the_model_without_attention_gives_468_points():
    frame = next(decode_frames(data_bytes("blink/zju/000002M_FNN.mp4"), 15.0, 640))
    landmarker = FaceLandmarker(attention=False)
    try:
        faces = landmarker.detect(frame.image)
    finally:
        landmarker.close()
    assert faces[0].shape == (468, 3)
