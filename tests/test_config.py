"""Configuration from defaults, env and a TOML file."""

from __future__ import annotations

import pytest

from service.config import load_config, parse_api_keys


def test_defaults_run_out_of_the_box():
    cfg = load_config(env={})
    assert (cfg.host, cfg.port) == ("127.0.0.1", 8080)
    assert cfg.max_request_bytes == 10 * 1024 * 1024 and cfg.auth.timestamp_window_s == 300


def test_env_overrides_and_api_keys():
    cfg = load_config(env={"SERVICE_PORT": "9000", "SERVICE_API_KEYS": "a:x, b:y",
                           "SERVICE_FACES__DETECT_SIDES": "320,640", "SERVICE_AUTH__REJECT_REPLAYS": "0"})
    assert cfg.port == 9000 and dict(cfg.api_keys) == {"a": "x", "b": "y"}
    assert cfg.faces.detect_sides == (320, 640) and cfg.auth.reject_replays is False


def test_toml_file_then_env_then_arguments(tmp_path):
    path = tmp_path / "service.toml"
    path.write_text('port = 7000\nhost = "0.0.0.0"\n[api_keys]\nk = "s"\n')
    cfg = load_config(env={"SERVICE_CONFIG": str(path), "SERVICE_HOST": "::1"}, port=7100)
    assert (cfg.host, cfg.port, dict(cfg.api_keys)) == ("::1", 7100, {"k": "s"})


@pytest.mark.parametrize("text", ["nocolon", "a:", ":b"])
def test_malformed_api_keys_are_refused(text):
    with pytest.raises(ValueError):
        parse_api_keys(text)


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        load_config(env={}, colour="blue")


def test_sections_nest_in_toml_env_and_arguments(tmp_path):
    path = tmp_path / "service.toml"
    path.write_text("[http]\nkeepalive_s = 5\n[engine.blink]\nclose_ratio = 0.7\n")
    cfg = load_config(env={"SERVICE_CONFIG": str(path),
                           "SERVICE_HTTP__HEADER_TIMEOUT_S": "3"}, http__body_timeout_s=9)
    assert (cfg.http.keepalive_s, cfg.http.header_timeout_s, cfg.http.body_timeout_s) == \
        (5.0, 3.0, 9.0)
    assert cfg.engine.blink.close_ratio == 0.7 and cfg.engine.blink.enter_ratio == 0.8


@pytest.mark.parametrize("env", [{"SERVICE_HTTP__COLOUR": "blue"},
                                 {"SERVICE_PORT__NUMBER": "1"}, {"SERVICE_HTTP": "1"}])
def test_unknown_or_misplaced_nested_keys_are_refused(env):
    with pytest.raises(ValueError):
        load_config(env=env)


def test_limits_that_mean_different_things_have_different_names():
    """Issue 22: the engine's progress hints, the quality gate, the comparison's size
    floor, identity sampling and the cues' pose gate each have their own name (the
    defaults unchanged); the names they once shared are refused."""
    cfg = load_config(env={"SERVICE_ENGINE__HINT_MIN_FACE_WIDTH_PX": "80",
                           "SERVICE_ENGINE__HINT_MAX_BRIGHTNESS": "200",
                           "SERVICE_SILENT__QUALITY__MIN_FACE_SIDE_PX": "60",
                           "SERVICE_ENGINE__REPLACEMENT__IDENTITY_MAX_YAW": "0.2"})
    assert (cfg.engine.hint_min_face_width_px, cfg.engine.hint_max_brightness) == (80, 200)
    assert cfg.silent.quality.min_face_side_px == 60 and cfg.silent.quality.max_brightness == 220
    assert cfg.engine.replacement.identity_max_yaw == 0.2
    assert (cfg.engine.cue_max_yaw, cfg.engine.turn.rest_max_yaw, cfg.faces.compare_min_face_px,
            cfg.engine.replacement.identity_min_face_width_px) == (0.5, 0.1, 32, 58)
    for old in ("SERVICE_ENGINE__MIN_FACE_PX", "SERVICE_ENGINE__MIN_BRIGHTNESS",
                "SERVICE_ENGINE__FRONTAL_MAX_YAW", "SERVICE_SILENT__QUALITY__MIN_FACE_PX",
                "SERVICE_FACES__MIN_FACE_PX", "SERVICE_ENGINE__REPLACEMENT__FRONTAL_YAW",
                "SERVICE_ENGINE__TURN__REST_LIMIT"):
        with pytest.raises(ValueError, match="unknown"):
            load_config(env={old: "1"})
