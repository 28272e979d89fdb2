#!/usr/bin/env bash
# tests/vm/fleet.sh - the fleet run: ansible-playbook on this machine (the controller)
# against two VM guests at once, over SSH, as a user runs the collection on a fleet.
#
# - Two guests boot at once (tests/vm/run-guest.sh -N: QEMU user networking, each guest's
#   port 22 forwarded from a free port on 127.0.0.1 only), each with its own DIMM layout
#   and kernel: pmem-a 2 x 512 MiB on 6.1, pmem-b 1 x 1 GiB on 6.12. They serve SSH
#   (tests/vm/guest/fleet-node.sh) with a key this script makes; nothing of pmem_stack is
#   on them.
# - The collection is built from the binary under test and installed on the controller
#   only (ansible-galaxy collection install into a temporary path). The playbooks and
#   inventory are the example in examples/fleet/ (inventory with group_vars and
#   host_vars), copied with the ports the guests got.
# - Runs: --check --diff (both hosts report pending changes, nothing on them changes);
#   a bad host_var on pmem-b (that host fails with the JSON path, unchanged; pmem-a
#   converges); the converge; the re-run (changed=0 on both, the module copied to each
#   host for the task and removed after); facts from both with pmem_stack_info; the
#   re-run again against ansible.builtin.ping, timed with ansible.posix.profile_tasks
#   (the figures are printed, not judged: they go in the README); the collection
#   installed with the oldest supported ansible-core (2.14), the check and the facts
#   again through it; and pmem-b with python3 hidden from PATH (the binary module runs;
#   ping cannot).
# Prints CHECK PASS/FAIL lines and a SUMMARY line (tests/vm/checks.sh), as the guest
# suites do; tests/vm.rs (vm_fleet_over_ssh) runs it.
#
#   PMEM_STACK_BIN=<static pmem_stack> tests/vm/fleet.sh
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${PMEM_STACK_BIN:?set PMEM_STACK_BIN to the pmem_stack binary (cargo dist)}
VENV=${PMEM_STACK_ANSIBLE_VENV:-$REPO/target/ansible-venv}
OLDEST=${PMEM_STACK_ANSIBLE_OLDEST_VENV:-$REPO/target/ansible-venv-2.14}
POSIX=$REPO/target/ansible-collections
source "$REPO/tests/vm/checks.sh"
for f in "$VENV/bin/ansible-playbook" "$OLDEST/bin/ansible-playbook" "$POSIX/ansible_collections/ansible/posix/MANIFEST.json" /usr/sbin/sshd; do
  [ -e "$f" ] || { echo "fleet: missing $f (run scripts/install-deps.sh)"; exit 1; }
done
W=$(mktemp -d /tmp/pmem-fleet.XXXXXX)
SHARE=$W/share
mkdir -p "$SHARE" "$W/home"

# ---- the guests ---------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ssh-keygen -q -t ed25519 -N '' -C pmem-fleet-host -f "$SHARE/host_key"
ssh-keygen -q -t ed25519 -N '' -C pmem-fleet-controller -f "$W/id"
cp "$W/id.pub" "$SHARE/authorized_keys"
PORT_A=$(free_port); PORT_B=$(free_port)
while [ "$PORT_B" = "$PORT_A" ]; do PORT_B=$(free_port); done
declare -A PORT=([pmem-a]=$PORT_A [pmem-b]=$PORT_B)
GUESTS=()
guest() {   # NAME DIMMS MIB KERNEL
  bash "$REPO/tests/vm/run-guest.sh" -n "$2" -s "$3" -K "$4" -m 768M -p 1 -t 1500 \
    -N "${PORT[$1]}" -w "$SHARE" -o "$W/vm-$1" -- bash "$REPO/tests/vm/guest/fleet-node.sh" "$SHARE" "$1" \
    > "$W/$1.console" 2>&1 &
  GUESTS+=($!)
}
stop_guests() {
  touch "$SHARE/stop"
  local rc=0
  for p in "${GUESTS[@]}"; do wait "$p" || rc=$?; done
  GUESTS=()
  return $rc
}
trap 'stop_guests >/dev/null 2>&1; if [ "$FAIL" = 0 ]; then rm -rf "$W"; else echo "fleet: its files are kept in $W"; fi' EXIT
section "two guests: pmem-a (2 x 512 MiB, 6.1) on 127.0.0.1:$PORT_A, pmem-b (1 x 1 GiB, 6.12) on 127.0.0.1:$PORT_B"
started=$(date +%s)
guest pmem-a 2 512 6.1
guest pmem-b 1 1024 6.12
SSH=(ssh -i "$W/id" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes
     -o LogLevel=ERROR -o ConnectTimeout=30)
on() { local h=$1; shift; "${SSH[@]}" -p "${PORT[$h]}" root@127.0.0.1 "$@"; }
for h in pmem-a pmem-b; do
  for _ in $(seq 240); do [ -e "$SHARE/$h.ready" ] && break; sleep 1; done
  checkc "$h serves SSH ($(( $(date +%s) - started )) s after the start)" 'on $h true'
done
for h in pmem-a pmem-b; do cat "$W/$h.console"; done
# no copy of the module on the hosts, no Python module anywhere in their way
for h in pmem-a pmem-b; do
  checkc "$h: no pmem_stack installed before the run" '! on $h "command -v pmem_stack; ls /usr/local/sbin/pmem_stack /usr/local/libexec/pmem-stack" 2>/dev/null | grep -q .'
done

# what a host has of PMEM and of boot persistence: compared before and after a run that
# must change nothing
snap() {
  on "$1" 'ndctl list -N 2>&1; dmsetup table 2>&1; grep -E "^[^ ]+ /mnt/" /proc/mounts;
           ls /etc/systemd/system /usr/local/sbin /usr/local/libexec /var/lib/pmem-stack 2>&1 | grep -i pmem'
}

# ---- the controller ------------------------------------------------------------------
TARBALL=$(PMEM_STACK_ANSIBLE_VENV=$VENV bash "$REPO/scripts/build-collection.sh" --bin "$BIN" --out "$W/build" | tail -1)
"$VENV/bin/ansible-galaxy" collection install -p "$W/collections" "$TARBALL" > "$W/galaxy.log" 2>&1
checkc "the collection installs on the controller ($(basename "$TARBALL"))" '[ -x "$W/collections/ansible_collections/pmemstack/pmem/plugins/modules/pmem_stack" ]'
cp -r "$REPO/examples/fleet" "$W/fleet"
sed -i "s/ansible_port: 2201/ansible_port: $PORT_A/; s/ansible_port: 2202/ansible_port: $PORT_B/" "$W/fleet/inventory/hosts.yml"
cp "$REPO/tests/ansible/fleet-timing.yml" "$W/fleet/"
export HOME=$W/home ANSIBLE_COLLECTIONS_PATH=$W/collections:$POSIX ANSIBLE_PRIVATE_KEY_FILE=$W/id \
  ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_RETRY_FILES_ENABLED=False \
  LANG=C.UTF-8 LC_ALL=C.UTF-8
cd "$W/fleet"
# play NAME ARGS...: ansible-playbook with ARGS, output in $W/NAME.out (echoed, but for
# the -vvv connection lines)
play() {
  local name=$1; shift
  echo "\$ ansible-playbook $*"
  "${PLAYBOOK:-$VENV/bin/ansible-playbook}" "$@" > "$W/$name.out" 2>&1
  echo $? > "$W/$name.rc"
  # indented: the diff's "--- before" lines are not the suite's headings
  grep -v '^$' "$W/$name.out" | grep -v -E '^(PUT|SSH|<127|EXEC|Using|ESTABLISH|Loading|META)' > "$W/$name.shown"
  if [ "$(wc -l < "$W/$name.shown")" -gt 300 ]; then   # -vvv: the head, then the recap
    { head -280 "$W/$name.shown"; echo "[... $(( $(wc -l < "$W/$name.shown") - 280 )) lines ...]"
      sed -n '/^PLAY RECAP/,$p' "$W/$name.shown"; } > "$W/$name.cut" && mv "$W/$name.cut" "$W/$name.shown"
  fi
  sed 's/^/  | /' "$W/$name.shown"
}
# recap NAME HOST: the host's recap line of that run, e.g. "ok=1 changed=1 ... failed=0 ..."
recap() { sed -n "s/^$2 *: *//p" "$W/$1.out" | tr -s ' '; }
has() { grep -q -- "$2" "$W/$1.out"; }
field() { recap "$1" "$2" | tr ' ' '\n' | sed -n "s/^$3=//p"; }

section "--check --diff: both hosts report pending changes, nothing changes"
for h in pmem-a pmem-b; do snap $h > "$W/$h.before"; done
play check -i inventory site.yml --check --diff
for h in pmem-a pmem-b; do
  checkc "$h: the check reports a change and no failure ($(recap check $h))" '[ "$(field check $h changed)" = 1 ] && [ "$(field check $h failed)" = 0 ]'
  snap $h > "$W/$h.after-check"
  checkc "$h: nothing changed on the host" 'cmp -s "$W/$h.before" "$W/$h.after-check"'
done
checkc "the diff shows pmem-a's striped device and pmem-b's partition" 'has check "+++ after: dm table pmem-data" && has check "striped over namespace pm0, namespace pm1, chunk 4096 sectors" && has check "+++ after: partition.*pmemdata"'
checkc "the changed lines name both hosts" 'has check "changed: \[pmem-a\]" && has check "changed: \[pmem-b\]"'

section "a bad host_var on pmem-b: that host fails with the JSON path, pmem-a converges"
cp -r inventory inventory-bad
sed -i 's/mode: fsdax}/mode: fsdx}/' inventory-bad/host_vars/pmem-b.yml   # a typo
play bad -i inventory-bad site.yml
checkc "pmem-b failed ($(recap bad pmem-b))" '[ "$(field bad pmem-b failed)" = 1 ]'
checkc "its message names the option's path" 'has bad "fatal: \[pmem-b\]" && grep -F "namespaces[0].mode: " "$W/bad.out" | grep -q -F "unknown variant \`fsdx\`"'
snap pmem-b > "$W/pmem-b.after-bad"
checkc "nothing changed on pmem-b" 'cmp -s "$W/pmem-b.before" "$W/pmem-b.after-bad"'
checkc "pmem-a converged in the same run ($(recap bad pmem-a))" '[ "$(field bad pmem-a changed)" = 1 ] && [ "$(field bad pmem-a failed)" = 0 ]'
checkc "pmem-a: xfs on the striped device, mounted with DAX" 'on pmem-a "findmnt -n -o FSTYPE,OPTIONS /mnt/pmem" | grep -q "^xfs .*dax"'
checkc "the run's exit status says a host failed" '[ "$(cat "$W/bad.rc")" = 2 ]'

section "the converge"
play converge -i inventory site.yml --diff
checkc "pmem-b converged ($(recap converge pmem-b))" '[ "$(field converge pmem-b changed)" = 1 ] && [ "$(field converge pmem-b failed)" = 0 ]'
checkc "pmem-a had nothing left to do ($(recap converge pmem-a))" '[ "$(field converge pmem-a changed)" = 0 ] && [ "$(field converge pmem-a failed)" = 0 ]'
checkc "pmem-b: ext4 on the partition, mounted with DAX" 'on pmem-b "findmnt -n -o FSTYPE,OPTIONS /mnt/pmem" | grep -q "^ext4 .*dax"'

section "the re-run: changed=0 on both hosts; the module is copied to each host for the task"
play rerun -i inventory site.yml -vvv
for h in pmem-a pmem-b; do
  checkc "$h: $(recap rerun $h)" '[ "$(field rerun $h changed)" = 0 ] && [ "$(field rerun $h failed)" = 0 ] && [ "$(field rerun $h ok)" = 1 ]'
  checkc "$h: and removed after it (no temporary directory left)" '[ -z "$(on $h "ls -A /root/.ansible/tmp 2>/dev/null")" ]'
done

checkc "the module was put on the hosts twice: a copy for each host's task" '[ "$(grep -c "PUT .* TO /root/.ansible/tmp/ansible-tmp-[^ ]*/AnsiballZ_pmem_stack\$" "$W/rerun.out")" = 2 ]'

section "facts from both hosts with pmem_stack_info"
play facts -i inventory facts.yml
for h in pmem-a pmem-b; do
  checkc "$h: $(recap facts $h)" '[ "$(field facts $h failed)" = 0 ] && [ "$(field facts $h changed)" = 0 ]'
done
checkc "pmem-a's facts: 2 regions, pm0 and pm1, the dm device, the DAX mount, kernel 6.1" \
  'grep -A2 "ok: \[pmem-a\]" "$W/facts.out" | grep -q "regions=2 namespaces=pm0,pm1 dm=pmem-data mounts=/mnt/pmem dax_mounts_pmd_ok=1 kernel=6.1."'
checkc "pmem-b's facts: 1 region, pm0, no dm device, the DAX mount, kernel 6.12" \
  'grep -A2 "ok: \[pmem-b\]" "$W/facts.out" | grep -q "regions=1 namespaces=pm0 dm= mounts=/mnt/pmem dax_mounts_pmd_ok=1 kernel=6.12."'

section "timing: the converged pmem_stack task against ansible.builtin.ping (profile_tasks)"
ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks play timing -i inventory fleet-timing.yml
for h in pmem-a pmem-b; do
  checkc "$h: every task ok, none changed ($(recap timing $h))" '[ "$(field timing $h ok)" = 6 ] && [ "$(field timing $h changed)" = 0 ] && [ "$(field timing $h failed)" = 0 ]'
done
# profile_tasks' closing table: "Converged stack 2 ---------- 1.23s"
grep -E '^(Ping|Converged stack) [0-9] -+ [0-9.]+s$' "$W/timing.out" | sort > "$W/timing.table"
checkc "profile_tasks timed all six tasks" '[ "$(wc -l < "$W/timing.table")" = 6 ]'
echo "FLEET TIMING (ansible-core $("$VENV/bin/ansible" --version | sed -n '1s/.*core \([0-9.]*\).*/\1/p'), two hosts in parallel, per task):"
sed 's/ -* / /' "$W/timing.table" | sed 's/^/  /'

section "the oldest supported ansible-core, $("$OLDEST/bin/ansible" --version | sed -n '1s/.*core \([0-9.]*\).*/\1/p'): the collection installed with it, the check and the facts"
"$OLDEST/bin/ansible-galaxy" collection install -p "$W/collections-oldest" "$TARBALL" > "$W/galaxy-oldest.log" 2>&1
checkc "its ansible-galaxy installs the collection" '[ -x "$W/collections-oldest/ansible_collections/pmemstack/pmem/plugins/modules/pmem_stack" ]'
ANSIBLE_COLLECTIONS_PATH=$W/collections-oldest PLAYBOOK=$OLDEST/bin/ansible-playbook play oldest -i inventory site.yml --check --diff
ANSIBLE_COLLECTIONS_PATH=$W/collections-oldest PLAYBOOK=$OLDEST/bin/ansible-playbook play oldest-facts -i inventory facts.yml
for h in pmem-a pmem-b; do
  checkc "$h: nothing to change ($(recap oldest $h))" '[ "$(field oldest $h ok)" = 1 ] && [ "$(field oldest $h changed)" = 0 ] && [ "$(field oldest $h failed)" = 0 ]'
  checkc "$h: facts ($(recap oldest-facts $h))" '[ "$(field oldest-facts $h ok)" = 3 ] && [ "$(field oldest-facts $h failed)" = 0 ]'
done

section "pmem-b without Python: the binary module needs none"
# python3 hidden from the host: whiteouts over /usr/bin (/bin is the same directory)
on pmem-b 'mkdir -p /run/nopy/u /run/nopy/w && for p in /usr/bin/python*; do mknod /run/nopy/u/${p##*/} c 0 0; done &&
           mount -t overlay -o lowerdir=/usr/bin,upperdir=/run/nopy/u,workdir=/run/nopy/w nopy /usr/bin'
checkc "pmem-b: no python in its PATH" '[ "$(on pmem-b "compgen -c | grep -c ^python")" = 0 ]'
play nopy -i inventory site.yml --limit pmem-b
checkc "pmem_stack runs on it, unchanged ($(recap nopy pmem-b))" '[ "$(field nopy pmem-b ok)" = 1 ] && [ "$(field nopy pmem-b changed)" = 0 ] && [ "$(field nopy pmem-b failed)" = 0 ]'
play nopy-facts -i inventory facts.yml --limit pmem-b
checkc "pmem_stack_info runs on it ($(recap nopy-facts pmem-b))" '[ "$(field nopy-facts pmem-b failed)" = 0 ] && [ "$(field nopy-facts pmem-b ok)" = 3 ]'
"$VENV/bin/ansible" -i inventory pmem-b -m ansible.builtin.ping > "$W/nopy-ping.out" 2>&1
sed "s/^/  | /" "$W/nopy-ping.out"
checkc "while a Python module cannot run there (ping fails)" 'grep -q "pmem-b | FAILED" "$W/nopy-ping.out"'

section "the guests stop"
cd "$REPO"
checkc "both guests ended cleanly" 'stop_guests'
echo "fleet: $(( $(date +%s) - started )) s"
summary
