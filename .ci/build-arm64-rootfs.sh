#!/usr/bin/env bash
# Build the emulated aarch64 test board once per CI run and cache it as a tarball.
#
#   .ci/build-arm64-rootfs.sh [TARBALL]      (default: $EDGESHIP_ARM64_ROOTFS or
#                                             /var/cache/edgeship-test/arm64-rootfs.tar)
#
# A Debian bookworm arm64 minbase with python3 and openssh-server only: no numpy, no backends,
# not even python3-venv (`edgeship deploy --provision` installs what the agent needs).  Runs
# under qemu-user-static through binfmt_misc.  Reuses the tarball when present; ~3-4 min to
# build on 2 cores.
# Needs root and: debootstrap qemu-user-static binfmt-support.  See ../shared/TEST-DEVICES.md.
set -euo pipefail

TARBALL=${1:-${EDGESHIP_ARM64_ROOTFS:-/var/cache/edgeship-test/arm64-rootfs.tar}}
SUITE=bookworm
PACKAGES="python3 openssh-server"

# The tarball is reused only if it was built from this recipe (bump v1 when the build changes).
RECIPE="v1 $SUITE arm64 minbase + $PACKAGES, user edgedev"
if [[ -s "$TARBALL" && "$(cat "$TARBALL.recipe" 2>/dev/null)" == "$RECIPE" ]]; then
    echo "arm64 rootfs: reusing $TARBALL"
    exit 0
fi
[[ $(id -u) == 0 ]] || { echo "error: building the arm64 rootfs needs root" >&2; exit 2; }
for tool in debootstrap qemu-aarch64-static update-binfmts; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool is missing. Fix: apt-get install -y debootstrap qemu-user-static binfmt-support" >&2
        exit 4
    }
done

# binfmt_misc lets the kernel hand aarch64 ELF files to qemu-aarch64-static; with the F flag
# the interpreter is opened now, so nothing needs copying into the rootfs.
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
[[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || update-binfmts --import qemu-aarch64
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
    echo "error: binfmt_misc has no enabled qemu-aarch64 entry. Fix: update-binfmts --enable qemu-aarch64" >&2
    exit 4
}

# The Debian mirror this machine's apt already uses (deb822 or one-line sources).
MIRROR=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[[ -n "$MIRROR" ]] || MIRROR=$(awk '$1=="deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}

mkdir -p "$(dirname "$TARBALL")"
WORK=$(mktemp -d "$(dirname "$TARBALL")/.arm64-build.XXXXXX")
ROOT=$WORK/rootfs
cleanup() {
    for m in "$ROOT/proc" "$ROOT/dev/pts"; do mountpoint -q "$m" && umount -l "$m"; done
    rm -rf "$WORK"
}
trap cleanup EXIT

export QEMU_CPU=cortex-a72 DEBIAN_FRONTEND=noninteractive LC_ALL=C
# Host pip settings and certificates mean nothing inside the rootfs.
unset PIP_FIND_LINKS PIP_CERT PIP_INDEX_URL PIP_EXTRA_INDEX_URL

start=$SECONDS
echo "arm64 rootfs: debootstrap $SUITE from $MIRROR into $ROOT"
debootstrap --arch=arm64 --foreign --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 3; }
chroot "$ROOT" /debootstrap/debootstrap --second-stage >"$WORK/second-stage.log" 2>&1 \
    || { tail -20 "$WORK/second-stage.log" "$ROOT/debootstrap/debootstrap.log" >&2; exit 3; }
echo "arm64 rootfs: base system in $((SECONDS - start)) s"

cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
echo "deb $MIRROR $SUITE main" >"$ROOT/etc/apt/sources.list"
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
chroot "$ROOT" apt-get -q -o Acquire::Check-Valid-Until=false update >"$WORK/apt.log" 2>&1 \
    && chroot "$ROOT" apt-get -q -y --no-install-recommends install $PACKAGES >>"$WORK/apt.log" 2>&1 \
    || { tail -30 "$WORK/apt.log" >&2; exit 3; }
umount "$ROOT/proc"
echo "arm64 rootfs: $PACKAGES in $((SECONDS - start)) s"

# The test user logs in with a key only ('*' rather than '!' so sshd does not call it locked);
# the fixtures bring their own host keys, so drop the ones the package generated.
chroot "$ROOT" useradd -m -s /bin/bash edgedev
chroot "$ROOT" usermod -p '*' edgedev
rm -f "$ROOT"/etc/ssh/ssh_host_*
mkdir -p "$ROOT/run/sshd"
chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin

tar -C "$ROOT" --numeric-owner -cf "$WORK/rootfs.tar" .
mv "$WORK/rootfs.tar" "$TARBALL"   # same filesystem: an atomic rename, never a half tarball
echo "$RECIPE" >"$TARBALL.recipe"
echo "arm64 rootfs: wrote $TARBALL ($(du -h "$TARBALL" | cut -f1)) in $((SECONDS - start)) s"
