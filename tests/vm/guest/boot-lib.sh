# Sourced by the real-boot suite (boot-1.sh, boot-2.sh, boot-3.sh): systemd is PID 1,
# the files the module writes go to the guest's own /etc and /usr/local (kept across the
# boots by the rig's -P), the test's own notes to $KEEP.
source "$(dirname "$0")/lib.sh"
: "${KEEP:?}"
ARGS_A='{"namespaces":[{"name":"pm0","region":"region0","mode":"fsdax","size":"512M"},{"name":"pm1","region":"region1","mode":"fsdax","size":"512M"}],
"devices":[{"name":"pmem-striped","target":"striped","members":["pm0","pm1"]}],
"filesystems":[{"device":"pmem-striped","type":"xfs"}],
"mounts":[{"path":"/mnt/a","device":"pmem-striped","dax":"always"}],"boot":{"persist":true}}'
# the rest of region1: on the DIMM that stays when boot 3 removes the other one (boot 3
# boots the first DIMM file alone; at boot 1 the NFIT listed it second, region1)
ARGS_B='{"namespaces":[{"name":"pm2","region":"region1","mode":"fsdax"}],
"devices":[{"name":"pmem-lin","target":"linear","members":["pm2"]}],
"filesystems":[{"device":"pmem-lin","type":"ext4"}],
"mounts":[{"path":"/mnt/b","device":"pmem-lin","dax":"always","options":["noatime"]}],"boot":{"persist":true}}'
# a third task: a GPT partition on pm3 (the rest of region0, beside pm0), ext4 on /mnt/c
# (xfs with a 2 MiB stripe unit wants more than its 510 MiB);
# its mount unit names the partition by PARTUUID
ARGS_C='{"namespaces":[{"name":"pm3","region":"region0","mode":"fsdax"}],
"partitions":[{"name":"pmem-c","disk":"pm3"}],
"filesystems":[{"device":"pmem-c","type":"ext4"}],
"mounts":[{"path":"/mnt/c","device":"pmem-c","dax":"always"}],"boot":{"persist":true}}'
UNITS=/etc/systemd/system
# write_data FILE SUMS: 8 MiB of random data, synced, and its checksum (what a later boot
# checks)
write_data() { dd if=/dev/urandom of="$1" bs=1M count=8 status=none && sync && sha256sum "$1" > "$2"; }
# the module's own copy of itself for the boot replay
BOOT_COPY=/usr/local/libexec/pmem-stack/pmem_stack
# prop UNIT PROPERTY: one property as systemd reports it
prop() { systemctl show -p "$2" --value "$1"; }
# the replay service a mount unit requires (read from systemd)
replay_of() { systemctl show -p Requires --value "$1" | tr ' ' '\n' | grep '^pmem-stack' | head -1; }
# show UNIT...: what systemd says of each unit, for the log (and the closing note)
show() {
  for u in "$@"; do
    echo "  systemctl show $u: $(systemctl show -p ActiveState,SubState,Result,ExecMainStatus,ActiveEnterTimestampMonotonic,ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic "$u" | tr '\n' ' ')"
  done
}
# journal LABEL ARGS...: the journal of this boot for some units, printed with a label
journal() {
  local label=$1; shift
  echo "  journal ($label):"
  journalctl -b --no-pager -o short-monotonic "$@" | sed 's/^/  | /'
}
check "systemd is PID 1" [ "$(cat /proc/1/comm)" = systemd ]
echo "  kernel $(uname -r); systemd $(systemctl --version | head -1)"
# mount_namespaces: every mount namespace on the host, once each (the first process seen
# in it), as "pid comm ns-inode"; our own is marked "(this shell)"
mount_namespaces() {
  local p ns seen=" " self
  self=$(readlink /proc/self/ns/mnt); self=${self#mnt:[}; self=${self%]}
  for p in /proc/[0-9]*; do
    ns=$(readlink "$p/ns/mnt" 2>/dev/null) || continue
    ns=${ns#mnt:[}; ns=${ns%]}
    case $seen in *" $ns "*) continue;; esac
    seen="$seen$ns "
    echo "${p#/proc/} $(cat "$p/comm" 2>/dev/null) $ns$([ "$ns" = "$self" ] && echo " (this shell)")"
  done
}
# copies MAJ:MIN PATH...: every process whose mountinfo has a mount of device MAJ:MIN or
# at one of PATHs, as "pid comm mnt:[ns]: mountinfo line" (every pid, not one per namespace)
copies() {
  local devno=$1 p ns; shift
  for p in /proc/[0-9]*; do
    ns=$(readlink "$p/ns/mnt" 2>/dev/null) || continue
    awk -v d="$devno" -v pre="${p#/proc/} $(cat "$p/comm" 2>/dev/null) $ns: " -v paths=" $* " \
      '$3 == d || index(paths, " " $5 " ") { print pre $0 }' "$p/mountinfo" 2>/dev/null
  done
}
