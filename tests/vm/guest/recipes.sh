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

# play NAME PLAYBOOK [ansible-playbook args]: run, keep output, print the recap
play() {
  local name=$1 pb=$2; shift 2
  "$VENV/bin/ansible-playbook" -i localhost, -c local "${BECOME[@]}" "$@" "$pb" > "$W/$name.log" 2>&1
  echo $? > "$W/$name.rc"
  echo "  [$name] rc=$(cat "$W/$name.rc") $(grep -E '^localhost +:' "$W/$name.log")"
}
recap() { grep -E '^localhost +:' "$W/$1.log" | grep -o "$2=[0-9]*" | cut -d= -f2; }
# the module arguments of the playbook's first task, as JSON
args_of() { "$VENV/bin/python" -c 'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))[0]["tasks"][0]["pmem_stack"]))' "$1"; }

recipe() {
  local name=$1 pb=$REPO/playbooks/$2 mnt=$3 fstype=$4
  section "recipe $name ($2)"
  facts "$name.facts0"
  play "$name.check" "$pb" --check --diff
  facts "$name.facts1"
  checkc "$name: --check --diff reports changed=1" '[ "$(cat "$W/$name.check.rc")" = 0 ] && [ "$(recap "$name.check" changed)" = 1 ]'
  checkc "$name: --check --diff shows a diff" 'grep -q "(after)" "$W/$name.check.log"'
  check "$name: --check changed nothing on the machine" cmp -s "$W/$name.facts0.json" "$W/$name.facts1.json"
  play "$name.run1" "$pb"
  checkc "$name: first run changed=1 failed=0" '[ "$(cat "$W/$name.run1.rc")" = 0 ] && [ "$(recap "$name.run1" changed)" = 1 ] && [ "$(recap "$name.run1" failed)" = 0 ]'
  head -c 16M /dev/urandom > "$mnt/data" && sync
  (cd "$mnt" && sha256sum data) > "$W/$name.sum"
  play "$name.run2" "$pb"
  checkc "$name: second run ok=1 changed=0" '[ "$(cat "$W/$name.run2.rc")" = 0 ] && [ "$(recap "$name.run2" ok)" = 1 ] && [ "$(recap "$name.run2" changed)" = 0 ]'
  checkc "$name: data intact after the second run (sha256)" '(cd "$mnt" && sha256sum -c --quiet "$W/$name.sum")'
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
summary
