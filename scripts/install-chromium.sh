#!/usr/bin/env bash
# Install Debian's Chromium for the browser test (tests/test_web_page.py).
# Idempotent; never fails the build: without Chromium that test skips with a reason.
set -u

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-chromium: not root and no sudo; the browser test will be skipped" >&2
        exit 0
    fi
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: no apt-get here; install Chromium by hand or the browser test is skipped" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium; then
    echo "install-chromium: $(chromium --version 2>/dev/null || echo installed)"
else
    echo "install-chromium: could not install chromium; the browser test will be skipped" >&2
fi
exit 0
