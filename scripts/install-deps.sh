#!/usr/bin/env bash
# Install what building and testing pmem-stack needs on a fresh Debian 12 machine:
# the crates' build deps (libdevmapper, libclang for bindgen), and the VM rig
# (QEMU, a Debian kernel, busybox for the initramfs, and the in-guest tools).
# Idempotent: apt runs only when a package is missing.
set -euo pipefail
PKGS=(
  # build: devicemapper-sys (bindgen + libdevmapper)
  pkg-config libdevmapper-dev libclang-dev clang
  # VM rig: TCG QEMU, Debian's kernel with dm/nd/ext4/xfs modules, initramfs tools
  qemu-system-x86 linux-image-amd64 busybox-static cpio kmod
  # in-guest tools used by the module (ndctl, mkfs) and by the tests to cross-check
  ndctl dmsetup kpartx gdisk xfsprogs e2fsprogs strace python3 python3-venv
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  # qemu-system-x86 replaces a preinstalled newer qemu-utils on some images; nothing here needs it
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
else
  echo "install-deps: all packages present"
fi

# Ansible for the recipe tests (ansible-core from PyPI, in a venv; no Galaxy). Debian's
# python3 so the VM guest, which sees this machine's root read-only, can run it too.
VENV=${PMEM_STACK_ANSIBLE_VENV:-$(cd "$(dirname "$0")/.." && pwd)/target/ansible-venv}
ANSIBLE_CORE=2.19.14
if ! "$VENV/bin/python" -c "import ansible.release as r; assert r.__version__ == '$ANSIBLE_CORE'" 2>/dev/null; then
  echo "install-deps: ansible-core $ANSIBLE_CORE into $VENV"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "ansible-core==$ANSIBLE_CORE"
fi
