#!/bin/bash
# VM suite 2 (runs INSIDE the guest): the three recipes of playbooks/ through real
# Ansible (ansible-core from PyPI in target/ansible-venv); the first from fresh
# label-less DIMMs (converted), the others in emptied labelled regions (created):
# for each: `--check --diff` (reports changes, machine unchanged), a real run (changed),
# data written and checksummed, a second run (ok, changed=0), data intact, the same
# arguments through stdin (unchanged), DAX evidence (mountinfo dax=always, STATX_ATTR_DAX
# on a file, xfs extsize 2m), then `state: absent` to free the namespaces for the next.
source "$(dirname "$0")/lib.sh"
REPO=$(cd "$HERE/../../.." && pwd)
VENV=${PMEM_STACK_ANSIBLE_VENV:-$REPO/target/ansible-venv}
export LANG=C.UTF-8 LC_ALL=C.UTF-8 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_LIBRARY="$W/library" ANSIBLE_HOST_KEY_CHECKING=0 ANSIBLE_RETRY_FILES_ENABLED=0
mkdir -p "$W/library"
cp "$BIN" "$W/library/pmem_stack"
cp "$REPO/playbooks/library/pmem_stack.yml" "$W/library/"
command -v sudo >/dev/null || BECOME=(-e ansible_become=false)

section "ansible-doc shows the sidecar documentation"
"$VENV/bin/ansible-doc" -M "$W/library" pmem_stack > "$W/doc.txt" 2>&1
head -12 "$W/doc.txt"
checkc "ansible-doc -M library pmem_stack shows the module" 'grep -q "MODULE pmem_stack" "$W/doc.txt" && grep -q "allow_data_loss" "$W/doc.txt" && grep -q "check_mode" "$W/doc.txt"'

# play NAME PLAYBOOK [ansible-playbook args]: run, keep output, print the recap; with
# TRACE=1 under strace (every process: Ansible and the module), opens in $W/NAME.opens
play() {
  local name=$1 pb=$2; shift 2
  local tr=()
  [ "${TRACE:-0}" = 1 ] && tr=(strace -f --seccomp-bpf -qq -y -e trace=openat,open -e signal=none -o "$W/$name.opens")
  "${tr[@]}" "$VENV/bin/ansible-playbook" -i localhost, -c local "${BECOME[@]}" "$@" "$pb" > "$W/$name.log" 2>&1
  echo $? > "$W/$name.rc"
  echo "  [$name] rc=$(cat "$W/$name.rc") $(grep -E '^localhost +:' "$W/$name.log")"
}
recap() { grep -E '^localhost +:' "$W/$1.log" | grep -o "$2=[0-9]*" | cut -d= -f2; }
# the module arguments of the playbook's first task, as JSON
args_of() { "$VENV/bin/python" -c 'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))[0]["tasks"][0]["pmem_stack"]))' "$1"; }

# ---- devices that are not ours, present through the whole suite ---------------------------
section "foreign devices: loop devices with content, an error-table dm device, a suspended one"
modprobe -q loop 2>/dev/null
truncate -s 32M "$W/loop0.img" "$W/loop1.img"
LOOP0=$(losetup -f --show "$W/loop0.img")
mkfs.ext4 -q -F -L loopfs "$LOOP0"
sgdisk -n 1:2048:+16M -c 1:looppart "$W/loop1.img" >/dev/null
LOOP1=$(losetup -f --show -P "$W/loop1.img")
udevadm settle
mkfs.ext4 -q -F "${LOOP1}p1"
dmsetup create foreign-err --table "0 8192 error"
dmsetup create foreign-susp --table "0 8192 zero"
dmsetup create foreign-on-susp --table "0 8192 linear /dev/mapper/foreign-susp 0"
udevadm settle   # udev's blkid must be done with them before the suspend (its reads would wait)
dmsetup suspend foreign-susp
FOREIGN_DM="foreign-err foreign-susp foreign-on-susp"
KN=""; for d in $FOREIGN_DM; do KN="$KN $(basename "$(readlink -f /dev/mapper/$d)")"; done
echo "  loop devices: $LOOP0 ${LOOP1} (${LOOP1}p1); dm:$(for d in $FOREIGN_DM; do echo -n " $d=$(basename "$(readlink -f /dev/mapper/$d)")"; done)"
dmsetup info -c $FOREIGN_DM
# what "untouched" means: the same tables and dm info (state, open count, event number),
# the same bytes on the loop devices
foreign_state() {
  for d in $FOREIGN_DM; do echo "== $d"; dmsetup table "$d"; dmsetup info "$d"; done
  sha256sum "$LOOP0" "$LOOP1" "${LOOP1}p1"
}
foreign_state > "$W/foreign.before"
checkc "foreign-susp is suspended" 'dmsetup info foreign-susp | grep -q "State: *SUSPENDED"'
# the foreign nodes, as a regex over `strace -y` output: the paths opened and the fds'
# resolved paths (`= 3</dev/dm-1>`)
ERR_K=$(basename "$(readlink -f /dev/mapper/foreign-err)")
FOREIGN_RE="/dev/(loop[0-9]|mapper/foreign-$(for k in $KN; do printf '|%s[">]' "$k"; done))"
echo "  foreign nodes: $FOREIGN_RE"
# opened_foreign FILE: the lines of a trace that open a foreign node (a failed lookup of
# a missing path is no open)
opened_foreign() { grep -E "$FOREIGN_RE" "$1" | grep -v -- "-1 ENOENT" || true; }
# the same, except foreign-err (which --facts reads, its scope being every dm device)
opened_foreign_but_err() { opened_foreign "$1" | grep -vE "/dev/(mapper/foreign-err|$ERR_K)[\">]" || true; }
# traced_module NAME JSON: `module` under strace -y for opens as well
traced_module() {
  local name=$1 json=$2
  printf '%s' "$json" > "$W/$name.args"
  strace -f --seccomp-bpf -qq -y -e trace=openat,open -e signal=none -o "$W/$name.opens" "$BIN" "$W/$name.args" > "$W/$name.json" 2> "$W/$name.err"
  echo $? > "$W/$name.rc"
  echo "  [$name] rc=$(cat "$W/$name.rc") changed=$(jv "$W/$name.json" changed) msg: $(jv "$W/$name.json" msg)"
}

recipe() {
  local name=$1 pb=$REPO/playbooks/$2 mnt=$3 fstype=$4
  section "recipe $name ($2)"
  echo "  (${SECONDS} s into the suite)"
  facts "$name.facts0"
  play "$name.check" "$pb" --check --diff
  facts "$name.facts1"
  checkc "$name: --check --diff reports changed=1 skipped=0" '[ "$(cat "$W/$name.check.rc")" = 0 ] && [ "$(recap "$name.check" changed)" = 1 ] && [ "$(recap "$name.check" skipped)" = 0 ]'
  checkc "$name: --check --diff shows a diff" 'grep -q "(after)" "$W/$name.check.log"'
  # Ansible renders each diff item from before/after once (`--- before: <header>`); a
  # `prepared` text beside them was printed a second time, with its own `--- <header>`
  checkc "$name: --check --diff shows each diff once" '[ -z "$(grep "^--- " "$W/$name.check.log" | sort | uniq -d)" ] && ! grep -qE "^--- (dm table|file) " "$W/$name.check.log"'
  check "$name: --check changed nothing on the machine" cmp -s "$W/$name.facts0.json" "$W/$name.facts1.json"
  TRACE=1 play "$name.run1" "$pb"
  # skipped=0: the result's conditional steps not needed are `skipped_steps`; a truthy
  # `skipped` would make Ansible report the task skipped
  checkc "$name: first run changed=1 failed=0 skipped=0" '[ "$(cat "$W/$name.run1.rc")" = 0 ] && [ "$(recap "$name.run1" changed)" = 1 ] && [ "$(recap "$name.run1" failed)" = 0 ] && [ "$(recap "$name.run1" skipped)" = 0 ]'
  head -c 16M /dev/urandom > "$mnt/data" && sync
  (cd "$mnt" && sha256sum data) > "$W/$name.sum"
  TRACE=1 play "$name.run2" "$pb"
  checkc "$name: second run ok=1 changed=0" '[ "$(cat "$W/$name.run2.rc")" = 0 ] && [ "$(recap "$name.run2" ok)" = 1 ] && [ "$(recap "$name.run2" changed)" = 0 ]'
  checkc "$name: data intact after the second run (sha256)" '(cd "$mnt" && sha256sum -c --quiet "$W/$name.sum")'
  for r in run1 run2; do
    echo "  [$name.$r] block devices opened (strace, every process): $(grep -oE 'open(at)?\(.*"/dev/(pmem|mapper/|dm-)[^"]*"' "$W/$name.$r.opens" | grep -oE '"/dev/[^"]*"' | sort -u | tr '\n' ' ')"
    checkc "$name.$r (converge, then no-op) through Ansible opened no foreign node" '[ -z "$(opened_foreign "$W/$name.$r.opens")" ] && grep -qE "\"/dev/(pmem|mapper/pmem)" "$W/$name.$r.opens"'
    opened_foreign "$W/$name.$r.opens" | head -5
    checkc "$name.$r: no warning about the foreign devices" '! grep -qE "foreign-|/dev/loop" "$W/$name.$r.log"'
  done
  "extra_$name"
  ARGS=$(args_of "$pb")
  module_stdin "$name.stdin" "$ARGS"
  checkc "$name: the same arguments through stdin: changed false" '[ "$(rc_of "$name.stdin")" = 0 ] && [ "$(jv "$W/$name.stdin.json" changed)" = false ]'
  grep " $mnt " /proc/self/mountinfo
  checkc "$name: mountinfo shows dax=always on $mnt" 'grep -q " $mnt .*dax=always" /proc/self/mountinfo'
  local a; a=$(xfs_io -c 'statx -r' "$mnt/data" | sed -n 's/^stat.attributes = //p')
  echo "  statx attributes of $mnt/data: $a"
  checkc "$name: STATX_ATTR_DAX on a file" '[ -n "$a" ] && [ $(( a & 0x200000 )) -ne 0 ]'
  checkc "$name: $fstype on $mnt" 'grep -q " $mnt .* - $fstype " /proc/self/mountinfo'
  if [ "$fstype" = xfs ]; then
    echo "  extsize: $(xfs_io -c extsize "$mnt")"
    checkc "$name: xfs root extsize 2m" 'xfs_io -c extsize "$mnt" | grep -q "^\[2097152\]"'
  fi
  module "$name.absent" "${ARGS%\}},\"state\":\"absent\"}"
  checkc "$name: state absent unmounts and removes it" '[ "$(rc_of "$name.absent")" = 0 ] && ! grep -q " $mnt " /proc/self/mountinfo'
  module "$name.absent2" "${ARGS%\}},\"state\":\"absent\"}"
  check "$name: a second absent run is unchanged" [ "$(jv "$W/$name.absent2.json" changed)" = false ]
  # free the regions for the next recipe: namespaces go only with allow_data_loss
  module "$name.destroy" "${ARGS%\}},\"state\":\"absent\",\"allow_data_loss\":true}"
  checkc "$name: absent with allow_data_loss destroys the namespaces" '[ "$(rc_of "$name.destroy")" = 0 ] && ! ndctl list -N | grep -q "\"name\":\"pm"'
}

# recipe-specific evidence, run while the recipe's stack is up
extra_striped() {
  echo "  dmsetup table pmem-striped: $(dmtable pmem-striped)"
  checkc "striped: chunk 4096 sectors over 2 stripes" '[ "$(dmtable pmem-striped | awk "{print \$3, \$4, \$5}")" = "striped 2 4096" ]'
  xfs_info /mnt/pmem | grep -E "sunit|reflink" | sed 's/^/  /'
  checkc "striped: xfs sunit=512 swidth=1024 blks, reflink=0" 'xfs_info /mnt/pmem | grep -q "sunit=512 *swidth=1024 blks" && xfs_info /mnt/pmem | grep -q "reflink=0"'
}
extra_linear() {
  echo "  dmsetup table pmem-linear: $(dmtable pmem-linear)"
  checkc "linear: ext4 RAID stride 512" 'dumpe2fs -h /dev/mapper/pmem-linear 2>/dev/null | grep -q "RAID stride: *512"'
}
extra_partition() {
  local d; d=$(readlink -f /dev/disk/by-partlabel/pmemdata); d=${d#/dev/}
  local parent; parent=$(basename "$(dirname "$(readlink -f /sys/class/block/$d)")")
  echo "  partition $d of $parent: start $(cat /sys/class/block/$d/start) size $(cat /sys/class/block/$d/size) sectors"
  checkc "partition: starts at sector 4096 (2 MiB), size a multiple of 4096 sectors" '[ "$(cat /sys/class/block/$d/start)" = 4096 ] && [ $(( $(cat /sys/class/block/$d/size) % 4096 )) = 0 ]'
  sgdisk -p "/dev/$parent" | tail -3 | sed 's/^/  /'
}

recipe striped striped-xfs.yml /mnt/pmem xfs
recipe linear linear-ext4.yml /mnt/pmem-linear ext4
recipe partition partition-ext4.yml /mnt/pmemdata ext4

section "direct runs (no Ansible) and --facts with the foreign devices present"
echo "  (${SECONDS} s into the suite)"
STRIPED=$(args_of "$REPO/playbooks/striped-xfs.yml")
traced_module direct.converge "$STRIPED"
checkc "direct converge: changed, not failed" '[ "$(rc_of direct.converge)" = 0 ] && [ "$(jv "$W/direct.converge.json" changed)" = true ]'
traced_module direct.noop "$STRIPED"
checkc "direct no-op: unchanged, no warnings" '[ "$(rc_of direct.noop)" = 0 ] && [ "$(jv "$W/direct.noop.json" changed)" = false ] && [ "$(jv "$W/direct.noop.json" warnings)" = "[]" ]'
for r in converge noop; do
  checkc "direct $r opened no foreign node" '[ -z "$(opened_foreign "$W/direct.$r.opens")" ] && grep -q "/dev/mapper/pmem-striped" "$W/direct.$r.opens"'
  opened_foreign "$W/direct.$r.opens" | head -5
done
strace -f --seccomp-bpf -qq -y -e trace=openat,open -e signal=none -o "$W/facts.opens" "$BIN" --facts > "$W/facts.json" 2> "$W/facts.err"
echo $? > "$W/facts.rc"
echo "  [--facts] rc=$(cat "$W/facts.rc") msg: $(jv "$W/facts.json" msg)"
jv "$W/facts.json" warnings -l | sed 's/^/  warning: /'
checkc "--facts succeeds with the foreign devices present" '[ "$(cat "$W/facts.rc")" = 0 ] && [ "$(jv "$W/facts.json" failed)" = false ]'
facts_unreadable_ok() {
  python3 - "$W/facts.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["ansible_facts"]["pmem_stack"]
u = {x["path"]: x["error"] for x in a["unreadable"]}
print("  unreadable:", json.dumps(u, indent=1))
assert "Input/output error" in u["/dev/mapper/foreign-err"], u
assert "dm device foreign-susp is suspended" in u["/dev/mapper/foreign-susp"], u
assert "stacked on suspended dm device foreign-susp" in u["/dev/mapper/foreign-on-susp"], u
assert len(u) == 3, u
# the loop devices are listed, never read: no filesystem of theirs is known
loops = {b["devno"] for b in a["block_devices"] if b["name"].startswith("loop")}
assert len(loops) >= 3, a["block_devices"]
assert not [f for f in a["filesystems"] if f["device"] in loops], a["filesystems"]
PY
}
checkc "--facts: foreign-err unreadable (EIO), the suspended one and the one on it not read, loops listed but not read" facts_unreadable_ok
checkc "--facts opened foreign-err, and no loop device, foreign-susp or foreign-on-susp" '[ -z "$(opened_foreign_but_err "$W/facts.opens")" ] && grep -q "/dev/mapper/foreign-err" "$W/facts.opens"'
opened_foreign "$W/facts.opens" | head -5
module direct.destroy "${STRIPED%\}},\"state\":\"absent\",\"allow_data_loss\":true}"
checkc "direct: the stack is taken down again" '[ "$(rc_of direct.destroy)" = 0 ]'

section "the foreign devices are untouched"
echo "  (${SECONDS} s into the suite)"
foreign_state > "$W/foreign.after"
diff "$W/foreign.before" "$W/foreign.after" && echo "  (same tables, dm info and loop device bytes)"
checkc "foreign devices untouched: same tables, same dm info (still suspended), same loop bytes" 'cmp -s "$W/foreign.before" "$W/foreign.after"'
checkc "foreign-susp is still suspended" 'dmsetup info foreign-susp | grep -q "State: *SUSPENDED"'
dmsetup resume foreign-susp
dmsetup remove foreign-on-susp foreign-susp foreign-err
losetup -d "$LOOP0" "$LOOP1"
checkc "foreign devices removed at the end" '! dmsetup info foreign-err >/dev/null 2>&1 && ! dmsetup info foreign-susp >/dev/null 2>&1'
summary
