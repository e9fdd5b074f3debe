#!/usr/bin/env bash
# Install the Debian packages the tests drive for real:
#   chromium      - the browser test of the onboarding page (tests/test_web_page.py)
#   redis-server  - the shared-state backend of N replicas (tests/test_replicas*.py)
#   coturn        - the TURN relay for clients behind strict NATs (tests/test_turn.py)
#   nodejs        - the Node client's tests (tests/test_client_node.py), when no node is on
#                   PATH: Debian bookworm's is 18.19+, enough for the client (18.17+)
#   podman, runc, debootstrap - the container image built and run (tests/test_image.py;
#                   runc where crun refuses hybrid cgroups; debootstrap makes the base)
# Idempotent; never fails the build: a test whose program is missing skips with a reason.
# Daemons are not started by the packages (policy-rc.d): the tests start their own
# instances on free loopback ports.
set -u

want=()
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
command -v turnserver >/dev/null 2>&1 || want+=(coturn)
command -v node >/dev/null 2>&1 || want+=(nodejs)
command -v podman >/dev/null 2>&1 || want+=(podman)
command -v runc >/dev/null 2>&1 || want+=(runc)
command -v debootstrap >/dev/null 2>&1 || want+=(debootstrap)
if [ ${#want[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-system-packages: not root and no sudo; tests needing ${want[*]} will skip" >&2
        exit 0
    fi
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-packages: no apt-get here; install ${want[*]} by hand or their tests skip" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy" && made_policy=1
fi
if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null; then
    echo "install-system-packages: installed ${want[*]}"
else
    echo "install-system-packages: could not install ${want[*]}; their tests will skip" >&2
fi
if [ "$made_policy" -eq 1 ]; then
    $SUDO rm -f "$policy"
fi
exit 0
