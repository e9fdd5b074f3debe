#!/usr/bin/env bash
# Make the Dockerfile's base image locally, where no container registry is reachable:
# a minimal Debian bookworm (debootstrap from deb.debian.org) with Python 3.11 and venv,
# imported into podman under the FROM name (docker.io/library/python:3.11-slim-bookworm),
# so the Dockerfile itself stays standard. Debian's python3 is 3.11 in bookworm, as in
# the official image; `python` comes from python-is-python3.
#
#   scripts/make-base-image.sh [cache-dir]     (root: debootstrap needs it)
#
# Certificate authorities this machine added to its trust store (/usr/local/share/ca-
# certificates: a TLS-intercepting proxy's, say) are added to the base's too, and pip is
# pointed at the system bundle, so `pip install` inside the build reaches PyPI exactly
# as it does on the host. A base pulled from a registry has neither need.
#
# The root file system is cached as a tarball in cache-dir (default .cache/image, git-
# ignored), so only the first run downloads (~2 min); later runs import it (~5 s) or do
# nothing when podman already has the image.
set -euo pipefail

name=docker.io/library/python:3.11-slim-bookworm
# Bumped with any change below: a cached tarball or image of an older recipe is remade.
recipe=2
cache=${1:-.cache/image}
tarball=$cache/bookworm-python3.11-r$recipe.tar

if [ "$(podman image inspect --format '{{index .Config.Labels "base-recipe"}}' "$name" 2>/dev/null)" = "$recipe" ]; then
    exit 0
fi
if [ ! -s "$tarball" ]; then
    mkdir -p "$cache"
    root=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
        bookworm "$root" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
        || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null 2>&1
    fi
    # apt as Debian's official images configure it: no package caches kept after an
    # install (they would stay in the layer of every `RUN apt-get`), no translations
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
    echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
    # what a slim image leaves out: package caches, documentation, locales
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/usr/share/locale/*
    tar -C "$root" --numeric-owner -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
fi
podman import --quiet --change 'ENV LANG=C.UTF-8' --change "LABEL base-recipe=$recipe" \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' --change 'CMD ["python3"]' "$tarball" "$name" >/dev/null
echo "make-base-image: $name imported from $tarball"
