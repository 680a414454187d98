#!/usr/bin/env bash
# Local stand-ins for the public base images, for machines that reach no image registry.
#
#   docker/standin-base.sh TAG [TAG...]
#
# Builds one Debian bookworm root filesystem (debootstrap --variant=minbase, with python3,
# python3-venv, python3-pip and ca-certificates) and imports it under every TAG given, e.g.
# python:3.11-slim-bookworm. Tags already present are left alone. Needs root, debootstrap and a
# reachable Debian mirror (DEBIAN_MIRROR, default deb.debian.org). The stand-in's Python is the
# distribution's /usr/bin/python3 (3.11 on bookworm), not /usr/local/bin/python3 as in the
# official image: the Dockerfiles find the interpreter on PATH and never name its path.
set -euo pipefail
DOCKER=${DOCKER:-docker}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
(($#)) || { echo "usage: $0 TAG [TAG...]" >&2; exit 2; }

missing=()
for tag in "$@"; do
  "$DOCKER" image inspect "$tag" >/dev/null 2>&1 || missing+=("$tag")
done
((${#missing[@]})) || { echo "stand-ins present: $*"; exit 0; }
command -v debootstrap >/dev/null || { echo "debootstrap is needed (apt-get install debootstrap)" >&2; exit 1; }

rootfs=$(mktemp -d /tmp/fti-standin-XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$rootfs" "$MIRROR" >/dev/null
# what a slim image leaves out: apt lists and caches
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
# `python` and `python3` on PATH as in the official images
ln -sf python3 "$rootfs/usr/bin/python"
for tag in "${missing[@]}"; do
  tar -C "$rootfs" -c . | "$DOCKER" import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["python3"]' - "$tag" >/dev/null
  echo "stand-in imported as $tag"
done
