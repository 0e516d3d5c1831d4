#!/usr/bin/env bash
# Usage: containers/base.sh ENGINE REGISTRY_BASE LOCAL_BASE
# Print the Python base image the build starts FROM: REGISTRY_BASE where it is here or can be pulled,
# otherwise LOCAL_BASE, built once from Debian bookworm's packages (its python3 is 3.11, the
# project's) with debootstrap and imported as an image. Messages go to stderr.
set -euo pipefail

engine=$1 registry_base=$2 local_base=$3
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

have() { "$engine" image inspect "$1" >/dev/null 2>&1; }

if have "$registry_base" || "$engine" pull -q "$registry_base" >/dev/null 2>&1; then
    echo "$registry_base"
    exit 0
fi
if have "$local_base"; then
    echo "base: $registry_base cannot be pulled; using $local_base, built here from Debian packages" >&2
    echo "$local_base"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "base: $registry_base cannot be pulled, and building $local_base from Debian packages needs root (debootstrap)" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

echo "base: $registry_base cannot be pulled; building $local_base from Debian bookworm ($MIRROR)" >&2
rootfs=$(mktemp -d /var/tmp/optbench-base.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$MIRROR" >&2
# What a container never needs: package lists, caches, docs and man pages.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
tar -C "$rootfs" -c . | "$engine" import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$local_base" >/dev/null
echo "$local_base"
