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
  # PMEM as system RAM: daxctl (its own package, not in ndctl)
  daxctl
  # LVM over PMEM; and real hosts have lvm2, whose udev rules scan every new block
  # device (pvscan) and activate what they find: every VM suite runs with them
  lvm2
  # the fleet run (tests/vm/fleet.sh): the managed guests serve SSH with this machine's sshd
  # (it runs in the guests only: it is not started here), Ansible connects with ssh
  openssh-server openssh-client
  # the Puppet wrapper's VM test (tests/vm/guest/wrappers.sh): Debian's puppet (7.23), run
  # as `puppet apply` in the guest; its agent service is not started here (policy-rc.d below)
  puppet
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  # qemu-system-x86 replaces a preinstalled newer qemu-utils on some images; nothing here needs it.
  # Packages must not start services here (openssh-server would start sshd on this
  # machine, puppet its agent): a policy-rc.d that denies them, unless the machine has one already.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d; own_policy=1
  fi
  rc=0; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" || rc=$?
  [ -z "$own_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
  [ $rc -eq 0 ] || exit $rc
else
  echo "install-deps: all packages present"
fi

# The second kernel the VM suites run on: Debian 12's 6.12 (bookworm-security names it by
# its ABI, linux-image-6.12.N+deb12-amd64; the newest one there). The rig boots it
# without an initramfs of its own, so none is generated (INITRD=No).
if ! ls /lib/modules/6.12.*/modules.dep >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  K612=$(apt-cache pkgnames linux-image-6.12. | grep -E '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' | sort -V | tail -1 || true)
  if [ -z "$K612" ]; then $SUDO apt-get update -q; K612=$(apt-cache pkgnames linux-image-6.12. | grep -E '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' | sort -V | tail -1); fi
  echo "install-deps: installing $K612 (the 6.12 kernel for the VM suites)"
  INITRD=No DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$K612"
fi

# Ansible for the recipe tests and the Ansible checks (scripts/ansible-checks.sh), from PyPI
# in venvs, every package pinned; no Galaxy. Debian's python3 so the VM guest, which sees
# this machine's root read-only, can run it too. make_venv DIR REQUIREMENTS WHAT: the venv,
# (re)installed only when a pinned package is missing from it.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
make_venv() {
  local venv=$1 reqs=$2 what=$3 want have
  want=$(grep -v '^ *\(#\|$\)' "$reqs" | sort)
  have=$("$venv/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null | sort || true)
  if [ -n "$(comm -23 <(echo "$want") <(echo "$have"))" ]; then
    echo "install-deps: $what ($(basename "$reqs")) into $venv"
    [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$reqs"
  fi
}
# The newest ansible-core installable here, with ansible-lint (scripts/ansible-requirements.txt).
make_venv "${PMEM_STACK_ANSIBLE_VENV:-$ROOT/target/ansible-venv}" \
  "$ROOT/scripts/ansible-requirements.txt" "ansible-core and ansible-lint"
# The oldest ansible-core the collection supports (meta/runtime.yml: requires_ansible
# >=2.14.0), for the same tests through ansible-playbook and ansible-test
# (scripts/ansible-oldest-requirements.txt). No ansible-lint here: lint runs on the newest
# ansible-core only (ansible-lint 26.10.1 needs ansible-core >= 2.16.19).
make_venv "${PMEM_STACK_ANSIBLE_OLDEST_VENV:-$ROOT/target/ansible-venv-2.14}" \
  "$ROOT/scripts/ansible-oldest-requirements.txt" "the oldest supported ansible-core"
# Salt for the Salt wrapper's VM test (`salt-call --local` in the guest, contrib/salt/):
# salt from PyPI, every package pinned (scripts/salt-requirements.txt).
make_venv "${PMEM_STACK_SALT_VENV:-$ROOT/target/salt-venv}" \
  "$ROOT/scripts/salt-requirements.txt" "salt"

# ansible.posix, for its profile_tasks callback (the fleet run times its tasks with it, as
# users do). Galaxy is out of reach here, so it comes out of the `ansible` package's wheel
# on PyPI, which bundles it (ansible 12.3.0 holds ansible.posix 2.1.0), checked by hash,
# into target/ansible-collections.
COLLS=$ROOT/target/ansible-collections
VENV=${PMEM_STACK_ANSIBLE_VENV:-$ROOT/target/ansible-venv}
if [ ! -f "$COLLS/ansible_collections/ansible/posix/MANIFEST.json" ]; then
  echo "install-deps: ansible.posix (from the ansible 12.3.0 wheel) into $COLLS"
  dl=$(mktemp -d)
  echo "ansible==12.3.0 --hash=sha256:cd156f82fa87f7a899212b0efa9f7ca3a24d609212de9f78428a572eb01e5414" > "$dl/req.txt"
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --require-hashes -r "$dl/req.txt" -d "$dl"
  "$VENV/bin/python" - "$dl/ansible-12.3.0-py3-none-any.whl" "$COLLS" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist() if n.startswith("ansible_collections/ansible/posix/")])
PY
  rm -rf "$dl"
fi
