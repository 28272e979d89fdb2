#!/bin/bash
# VM suite 3, first boot (runs INSIDE the guest): converge the striped recipe with boot
# persistence; the files (state, units, links, binary) go under PMEM_STACK_ROOT, a
# directory kept across the reboot; write data and its checksum there too.
source "$(dirname "$0")/lib.sh"
: "${PMEM_STACK_ROOT:?}" "${KEEP:?}"
ARGS='{"namespaces":[{"name":"pm0","region":"region0","mode":"fsdax"},{"name":"pm1","region":"region1","mode":"fsdax"}],
"devices":[{"name":"pmem-striped","target":"striped","members":["pm0","pm1"]}],
"filesystems":[{"device":"pmem-striped","type":"xfs"}],
"mounts":[{"path":"/mnt/pmem","device":"pmem-striped"}],"boot":{"persist":true}}'
printf '%s' "$ARGS" > "$KEEP/args.json"
R=$PMEM_STACK_ROOT
section "converge with persistence"
module persist1 "$ARGS"
check "persist: rc 0" [ "$(rc_of persist1)" = 0 ]
echo "  plan: $(actions "$W/persist1.json")"
check "persist: state saved" [ -f "$R/etc/pmem-stack/state.json" ]
check "persist: state file is root-only (0600)" [ "$(stat -c %a "$R/etc/pmem-stack/state.json")" = 600 ]
check "persist: state directory is root-only (0700)" [ "$(stat -c %a "$R/etc/pmem-stack")" = 700 ]
check "persist: the saved state never allows data loss" grep -q '"allow_data_loss": false' "$R/etc/pmem-stack/state.json"
check "persist: binary installed (same bytes)" cmp -s "$BIN" "$R/usr/local/sbin/pmem_stack"
check "persist: replay unit" [ -f "$R/etc/systemd/system/pmem-stack.service" ]
check "persist: mount unit" grep -q '^What=/dev/mapper/pmem-striped$' "$R/etc/systemd/system/mnt-pmem.mount"
check "persist: mount unit carries dax" grep -q '^Options=dax=always$' "$R/etc/systemd/system/mnt-pmem.mount"
check "persist: replay enabled" [ -L "$R/etc/systemd/system/local-fs-pre.target.wants/pmem-stack.service" ]
check "persist: mount enabled" [ -L "$R/etc/systemd/system/local-fs.target.wants/mnt-pmem.mount" ]
sed 's/^/  | /' "$R/etc/systemd/system/pmem-stack.service"
sed 's/^/  | /' "$R/etc/systemd/system/mnt-pmem.mount"
# systemd-analyze verify on the units as systemd would load them from that root (the
# binary they name must exist there: it does, installed by the module)
( cd "$R" && systemd-analyze verify --root="$R" etc/systemd/system/pmem-stack.service etc/systemd/system/mnt-pmem.mount ) > "$W/verify.txt" 2>&1
echo $? > "$W/verify.rc"
echo "  systemd-analyze verify: rc=$(cat "$W/verify.rc")"; sed 's/^/  ! /' "$W/verify.txt"
check "systemd-analyze verify passes on the generated units" [ "$(cat "$W/verify.rc")" = 0 ]
module persist2 "$ARGS"
checkc "second run: unchanged, no process started" '[ "$(jv "$W/persist2.json" changed)" = false ] && [ -z "$(spawns persist2)" ]'
section "data, and what the first boot saw"
head -c 16M /dev/urandom > /mnt/pmem/data && sync
(cd /mnt/pmem && sha256sum data) > "$KEEP/data.sha256"
echo "pm0=$(ns_blk pm0) pm1=$(ns_blk pm1)" > "$KEEP/boot1.txt"
dmtable pmem-striped >> "$KEEP/boot1.txt"
cat "$KEEP/boot1.txt"
umount /mnt/pmem
summary
