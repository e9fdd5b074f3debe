"""Blink and mouth state machines on synthetic series; video decoding on real clips."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import data_bytes

from service.config import Config, load_config
from service.errors import BadMedia, TooLarge
from service.liveness.blink import BlinkDetector, BlinkEvent, BlinkSettings
from service.liveness.mouth import MouthDetector, MouthEvent, MouthSettings
from service.media.frames import ClipSettings, decode_frames

FPS = 15.0
MP4 = "blink/zju/000003M_FNN.mp4"
AVI = "blink/zju_original/000003M_FNN.avi"


def eye_series(duration_s: float, open_ear: float = 0.3,
               closures: tuple[tuple[float, float, float], ...] = (),
               noise: float = 0.005, seed: int = 0, fps: float = FPS) -> list[tuple[float, float]]:
    """(t, EAR) samples: open eyes with jitter, and closures (start, length, closed EAR)
    shaped as a quick fall, a hold and a slower rise, like a real blink."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(int(duration_s * fps)):
        t = i / fps
        ear = open_ear
        for start, length, closed in closures:
            if start <= t <= start + length:
                phase = (t - start) / length
                closing = min(1.0, 3 * phase, 1.5 * (1 - phase))  # fall 1/3, rise 2/3
                ear = min(ear, open_ear - (open_ear - closed) * closing)
        samples.append((t, ear + float(rng.normal(0.0, noise))))
    return samples


def blinks_of(samples: list[tuple[float, float]]) -> list[BlinkEvent]:
    detector = BlinkDetector()
    events = [detector.update(t, ear, ear) for t, ear in samples]
    return [e for e in events if e is not None]


def mouth_events(samples: list[tuple[float, float]]) -> MouthDetector:
    detector = MouthDetector()
    for t, mar in samples:
        detector.update(t, mar)
    return detector


# --- blinks ---


def test_clean_blink_is_one_event_at_its_time():
    events = blinks_of(eye_series(4.0, closures=((2.0, 0.3, 0.05),)))
    assert len(events) == 1
    blink = events[0]
    assert 2.0 <= blink.start_t <= blink.end_t <= 2.3
    assert blink.depth > 0.7


def test_two_blinks_are_two_events():
    events = blinks_of(eye_series(5.0, closures=((1.5, 0.3, 0.06), (3.2, 0.25, 0.08))))
    assert [round(e.start_t) for e in events] == [2, 3]


def test_two_blinks_with_a_half_open_gap_are_two_events():
    samples = eye_series(4.0, closures=((1.5, 0.35, 0.06), (1.8, 0.35, 0.06)), noise=0.0)
    # between them the eyes only reopen to ~0.25 of 0.3, below a fixed "open" level
    assert max(ear for t, ear in samples if 1.7 < t < 1.95) < 0.27
    assert len(blinks_of(samples)) == 2


def test_slow_closure_of_two_seconds_is_not_a_blink():
    assert blinks_of(eye_series(6.0, closures=((2.0, 2.0, 0.05),))) == []


def test_blink_right_after_a_slow_closure_still_counts():
    samples = eye_series(8.0, closures=((1.5, 2.0, 0.05), (5.5, 0.3, 0.05)))
    events = blinks_of(samples)
    assert len(events) == 1 and events[0].start_t > 5.0


@pytest.mark.parametrize("seed", range(5))
def test_jitter_without_blinks_gives_no_event(seed):
    # 2% of the open EAR per sample is more than Face Mesh shows on a still face
    assert blinks_of(eye_series(30.0, noise=0.006, seed=seed)) == []


def test_shallow_dip_is_not_a_blink():
    assert blinks_of(eye_series(4.0, closures=((2.0, 0.3, 0.24),))) == []


@pytest.mark.parametrize("open_ear", [0.2, 0.36])
def test_blinks_are_found_whatever_the_open_eye_level(open_ear):
    # Narrow eyes (0.2 open, the whole clip under a fixed "EAR < 0.2" rule) and wide eyes
    # both blink to about a third of their own open level.
    closures = ((1.5, 0.3, open_ear / 3), (3.5, 0.3, open_ear / 3))
    assert len(blinks_of(eye_series(5.0, open_ear=open_ear, closures=closures))) == 2


def test_baseline_follows_a_lasting_change_of_level():
    # The person looks down: EAR drops from 0.3 to 0.22 and stays; a later blink counts
    # and the change itself is not one.
    samples = [(t, ear if t < 2.0 else ear - 0.08) for t, ear in
               eye_series(9.0, closures=((7.0, 0.3, 0.13),))]
    events = blinks_of(samples)
    assert len(events) == 1 and events[0].start_t >= 7.0


def test_turned_head_drops_the_blink_in_progress():
    detector = BlinkDetector()
    samples = eye_series(4.0, closures=((2.0, 0.4, 0.05),))
    events = [detector.update(t, ear, ear, frontal_ok=not 2.1 <= t <= 2.2)
              for t, ear in samples]
    assert not any(events)


def test_missing_face_sample_is_ignored():
    detector = BlinkDetector()
    for t, ear in eye_series(1.0):
        detector.update(t, ear, ear)
    assert detector.update(1.0, math.nan, math.nan) is None
    assert detector.baseline == pytest.approx(0.3, abs=0.02)


def test_reset_forgets_the_person():
    detector = BlinkDetector()
    for t, ear in eye_series(2.0, open_ear=0.35):
        detector.update(t, ear, ear)
    detector.reset()
    assert detector.baseline == 0.0 and detector.count == 0


# --- mouth ---


def speech_series(duration_s: float, seed: int = 0) -> list[tuple[float, float]]:
    """Syllables at ~4 Hz opening the lips 0.1-0.3 above a closed 0.02."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(int(duration_s * FPS)):
        t = i / FPS
        opening = max(0.0, math.sin(2 * math.pi * 4.0 * t)) * (0.1 + 0.2 * abs(math.sin(t)))
        samples.append((t, 0.02 + opening + float(rng.normal(0.0, 0.005))))
    return samples


def test_talking_moves_the_mouth():
    detector = mouth_events(speech_series(3.0))
    assert detector.moved and len(detector.events) >= 4


@pytest.mark.parametrize("resting", [0.0, 0.12])
def test_still_mouth_does_not_move(resting):
    # 0.12: lips resting apart, as some ZJU subjects do
    rng = np.random.default_rng(1)
    samples = [(i / FPS, resting + abs(float(rng.normal(0.0, 0.01)))) for i in range(150)]
    detector = mouth_events(samples)
    assert detector.events == [] and not detector.moved


def test_open_your_mouth_is_one_wide_excursion():
    samples = [(i / FPS, 0.5 if 1.0 <= i / FPS <= 2.0 else 0.01) for i in range(60)]
    detector = mouth_events(samples)
    assert len(detector.events) == 1 and not detector.moved
    event = detector.events[0]
    assert isinstance(event, MouthEvent)
    assert event.start_t == pytest.approx(1.0, abs=0.1) and event.amplitude > 0.45


def test_mouth_left_open_is_no_event_until_it_closes():
    samples = [(i / FPS, 0.5 if i / FPS >= 1.0 else 0.01) for i in range(60)]
    assert mouth_events(samples).events == []


def test_cue_parameters_come_from_the_config():
    assert Config().engine.blink == BlinkSettings() and Config().engine.mouth == MouthSettings()
    cfg = load_config(env={"SERVICE_ENGINE__BLINK__ENTER_RATIO": "0.7"})
    assert cfg.engine.blink.enter_ratio == 0.7 and cfg.engine.mouth == MouthSettings()


# --- video decoding ---


def test_mp4_is_sampled_at_the_analysis_rate():
    frames = list(decode_frames(data_bytes(MP4), fps=FPS))
    assert len(frames) == 75  # 149 frames at 30.018 fps, every other one
    times = np.array([f.t for f in frames])
    assert times[0] == 0.0
    assert np.allclose(np.diff(times), 2 / 30.018, atol=1e-3)
    assert [f.index for f in frames[:4]] == [0, 2, 4, 6]
    image = frames[0].image
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8


def test_clip_slower_than_the_rate_keeps_every_frame():
    assert len(list(decode_frames(data_bytes(MP4), fps=60.0))) == 149


def test_frames_are_downscaled_to_max_side():
    frame = next(decode_frames(data_bytes(MP4), max_side=160))
    assert frame.image.shape == (120, 160, 3)


def test_indeo_avi_decodes_like_its_mp4_twin():
    avi = list(decode_frames(data_bytes(AVI), fps=FPS))
    mp4 = list(decode_frames(data_bytes(MP4), fps=FPS))
    # The .avi lacks the "repeat" frames the mp4 holds, so a slot whose two source
    # frames were both repeats is skipped.
    assert abs(len(avi) - len(mp4)) <= 3
    mp4_times = np.array([f.t for f in mp4])
    for frame in avi:
        nearest = int(np.argmin(np.abs(mp4_times - frame.t)))
        assert abs(mp4_times[nearest] - frame.t) <= 1 / 30 + 1e-3
        diff = np.abs(frame.image.astype(int) - mp4[nearest].image.astype(int)).mean()
        assert diff < 8  # same picture, two lossy codecs


@pytest.mark.parametrize("path", [MP4, AVI])
@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.95])
def test_truncated_video_gives_its_first_frames_or_bad_media(path, fraction):
    data = data_bytes(path)
    full = len(list(decode_frames(data)))
    try:
        frames = list(decode_frames(data[: int(len(data) * fraction)]))
    except BadMedia:
        return
    assert 0 < len(frames) <= full
    assert all(a.t < b.t for a, b in itertools.pairwise(frames))


@pytest.mark.parametrize("data", [b"", b"not a video", bytes(range(256)) * 400,
                                  b"\x00\x00\x00\x18ftypmp42" + bytes(5000)])
def test_garbage_is_bad_media(data):
    with pytest.raises(BadMedia):
        list(decode_frames(data))


@pytest.mark.parametrize("limits", [ClipSettings(max_duration_s=2.0),
                                    ClipSettings(max_pixels=320 * 200),
                                    ClipSettings(max_frames=100)])
def test_video_over_a_limit_is_too_large(limits):
    with pytest.raises(TooLarge):
        list(decode_frames(data_bytes(MP4), limits=limits))
