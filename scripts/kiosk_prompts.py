#!/usr/bin/env python3
"""Show a session's prompts on a kiosk screen: read its events stream, print each in words.

A kiosk whose camera is pushed by FFmpeg's WHIP muxer has no data channel; this is its
screen. It reads `GET /v1/sessions/{id}/events` (server-sent events, spec 2.1) with the
session's bearer token and prints one line per prompt, release, met or failed challenge
and the result, ringing the terminal bell on a release (a person with closed eyes hears
it). While it is attached the service counts the prompts as delivered. Python's standard
library only, so a kiosk needs no virtualenv:

    python3 scripts/kiosk_prompts.py session.json

session.json is the answer of `POST /v1/sessions` (only `events_url` and
`session_token` are read; `-` reads it from standard input). Exits 0 after a `Living
body` result, 1 after any other result, 2 when the stream cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

SAY = {
    "eyes_closed": ("Close your eyes and keep them closed", "Open your eyes"),
    "mouth_open": ("Open your mouth wide and keep it open", "Close your mouth"),
    "turn_left": ("Turn your head to your left and hold it", "Face the camera"),
    "turn_right": ("Turn your head to your right and hold it", "Face the camera"),
    "blink": ("Blink once, now", ""),
    "mouth": ("Open and close your mouth once", ""),
}
FAILED = {
    "too_early": "too early: wait for each instruction",
    "too_late": "not seen in time",
    "wrong_action": "a different movement",
    "hold_broken": "released too soon",
    "not_delivered": "the instruction did not arrive",
}
HINTS = {"no face": "Look at the camera", "too far": "Come closer",
         "too dark": "More light, please", "too bright": "Too much light behind you",
         "hold still": "Hold still", "several faces": "Only one person, please"}
# The events stream sends a heartbeat comment every few seconds; a read that waits
# this long without even that means the connection is gone.
READ_TIMEOUT_S = 60.0


def line_for(message: dict[str, Any]) -> str | None:
    """The screen line for one message (None: nothing to show)."""
    kind = message.get("type")
    action = str(message.get("action", ""))
    step = f"[{int(message.get('index', 0)) + 1}/{message.get('total', '?')}]"
    if kind == "challenge":
        return f"{step} {SAY.get(action, (action, ''))[0]}"
    if kind == "release":
        return f"\a{SAY.get(action, ('', 'Release'))[1] or 'Release'}"
    if kind == "challenge_met":
        return "Done"
    if kind == "challenge_failed":
        return f"Not accepted: {FAILED.get(str(message.get('reason')), message.get('reason'))}"
    if kind == "progress":
        hints = [HINTS.get(h, h) for h in message.get("hints", [])]
        return ". ".join(hints) if hints else None
    if kind == "deciding":
        return "Checking..."
    return None


def verdict(payload: dict[str, Any]) -> tuple[bool, str]:
    status = payload.get("messageString", {})
    if status.get("status") != "2000":
        return False, f"Result: no decision ({status.get('value', 'error')})"
    items = {i.get("desc"): i.get("content") for i in payload["infoList"][0]["veritem"]}
    live = items.get("Live or not") == "Living body"
    return live, f"Result: {items.get('Live or not')} (score {items.get('Decision value')})"


def show(events_url: str, token: str, out: TextIO) -> int:
    request = urllib.request.Request(events_url, headers={
        "Authorization": f"Bearer {token}", "Accept": "text/event-stream"})
    try:
        with urllib.request.urlopen(request, timeout=READ_TIMEOUT_S) as stream:
            print("Look at the camera: the instructions will appear here.", file=out,
                  flush=True)
            for raw in stream:
                if not raw.startswith(b"data: "):
                    continue  # blank separators and ":" heartbeats
                message = json.loads(raw[6:])
                if message.get("type") == "result":
                    live, text = verdict(message.get("payload", {}))
                    print(text, file=out, flush=True)
                    return 0 if live else 1
                text = line_for(message)
                if text:
                    print(text, file=out, flush=True)
    except urllib.error.HTTPError as exc:
        print(f"events stream refused: HTTP {exc.code} {exc.read()[:200]!r}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"events stream failed: {exc}", file=sys.stderr)
        return 2
    print("events stream ended without a result", file=sys.stderr)
    return 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("session", help="the POST /v1/sessions answer as a JSON file, or -")
    args = parser.parse_args()
    text = sys.stdin.read() if args.session == "-" else Path(args.session).read_text()
    session = json.loads(text)
    return show(session["events_url"], session["session_token"], sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
