#!/bin/bash
# VM suite 3, first boot (runs INSIDE the guest): converge the striped recipe with boot
# persistence; the files (state, units, links, binary) go under PMEM_STACK_ROOT, a
# directory kept across the reboot; write data and its checksum there too. Then a second
# task persists its own stack (linear ext4 over pm2, the rest of region0, on /mnt/b): each task keeps its own
# saved state, replay instance (pmem-stack@<state>.service) and unit, and each stays
# idempotent.
source "$(dirname "$0")/lib.sh"
: "${PMEM_STACK_ROOT:?}" "${KEEP:?}"
# half of each region: the other half of region0 is for the second stack (a third DIMM
# would not keep the reversed enumeration moving pm0)
ARGS='{"namespaces":[{"name":"pm0","region":"region0","mode":"fsdax","size":"512M"},{"name":"pm1","region":"region1","mode":"fsdax","size":"512M"}],
"devices":[{"name":"pmem-striped","target":"striped","members":["pm0","pm1"]}],
"filesystems":[{"device":"pmem-striped","type":"xfs"}],
"mounts":[{"path":"/mnt/pmem","device":"pmem-striped"}],"boot":{"persist":true}}'
printf '%s' "$ARGS" > "$KEEP/args.json"
R=$PMEM_STACK_ROOT
# fresh DIMMs are label-less (one raw namespace per region, converted only whole): give
# them labels so that a region holds two namespaces
ndctl disable-region all >/dev/null && ndctl init-labels -f all >/dev/null && ndctl enable-region all >/dev/null
section "converge with persistence"
module persist1 "$ARGS"
check "persist: rc 0" [ "$(rc_of persist1)" = 0 ]
echo "  plan: $(actions "$W/persist1.json")"
# one saved state per persisted stack (it was /etc/pmem-stack/state.json)
STATE_A=$(ls "$R"/etc/pmem-stack/state.d/pmem-striped-*.json 2>/dev/null)
echo "  saved state: ${STATE_A#$R}"
check "persist: state saved" [ -f "$STATE_A" ]
check "persist: state file is root-only (0600)" [ "$(stat -c %a "$STATE_A")" = 600 ]
check "persist: state directory is root-only (0700)" [ "$(stat -c %a "$R/etc/pmem-stack")" = 700 ]
check "persist: state.d is root-only (0700)" [ "$(stat -c %a "$R/etc/pmem-stack/state.d")" = 700 ]
check "persist: the saved state never allows data loss" grep -q '"allow_data_loss": false' "$STATE_A"
check "persist: binary installed (same bytes)" cmp -s "$BIN" "$R/usr/local/sbin/pmem_stack"
# one replay instance per saved state, named after it: pmem-stack@<state stem>.service
INST_A="pmem-stack@$(basename "$STATE_A" .json).service"
check "persist: replay template" [ -f "$R/etc/systemd/system/pmem-stack@.service" ]
check "persist: the template replays its own saved state" grep -qxF 'ExecStart=/usr/local/sbin/pmem_stack --boot /etc/pmem-stack/state.d/%i.json' "$R/etc/systemd/system/pmem-stack@.service"
check "persist: no shared replay service" [ ! -e "$R/etc/systemd/system/pmem-stack.service" ]
check "persist: mount unit" grep -q '^What=/dev/mapper/pmem-striped$' "$R/etc/systemd/system/mnt-pmem.mount"
check "persist: mount unit carries dax" grep -q '^Options=dax=always$' "$R/etc/systemd/system/mnt-pmem.mount"
check "persist: mount unit requires its own replay instance" grep -qxF "Requires=$INST_A" "$R/etc/systemd/system/mnt-pmem.mount"
check "persist: replay instance enabled (a link to the template)" [ "$(readlink "$R/etc/systemd/system/local-fs-pre.target.wants/$INST_A")" = /etc/systemd/system/pmem-stack@.service ]
check "persist: mount enabled" [ -L "$R/etc/systemd/system/local-fs.target.wants/mnt-pmem.mount" ]
sed 's/^/  | /' "$R/etc/systemd/system/pmem-stack@.service"
sed 's/^/  | /' "$R/etc/systemd/system/mnt-pmem.mount"
# systemd-analyze verify on the units as systemd would load them from that root (the
# binary they name must exist there: it does, installed by the module; the template is
# verified as an instance of it)
( cd "$R" && systemd-analyze verify --root="$R" etc/systemd/system/pmem-stack@.service etc/systemd/system/mnt-pmem.mount ) > "$W/verify.txt" 2>&1
echo $? > "$W/verify.rc"
echo "  systemd-analyze verify: rc=$(cat "$W/verify.rc")"; sed 's/^/  ! /' "$W/verify.txt"
check "systemd-analyze verify passes on the generated units" [ "$(cat "$W/verify.rc")" = 0 ]
module persist2 "$ARGS"
checkc "second run: unchanged, no process started" '[ "$(jv "$W/persist2.json" changed)" = false ] && [ -z "$(spawns persist2)" ]'
section "a second task persists its own stack"
ARGS_B='{"namespaces":[{"name":"pm2","region":"region0","mode":"fsdax"}],
"devices":[{"name":"pmem-lin","target":"linear","members":["pm2"]}],
"filesystems":[{"device":"pmem-lin","type":"ext4"}],
"mounts":[{"path":"/mnt/b","device":"pmem-lin","options":["noatime"]}],"boot":{"persist":true}}'
printf '%s' "$ARGS_B" > "$KEEP/args-b.json"
A_FILES="$STATE_A $R/etc/systemd/system/mnt-pmem.mount"
sha256sum $A_FILES > "$W/a-files.sha256"
module persistb1 "$ARGS_B"
check "B: rc 0" [ "$(rc_of persistb1)" = 0 ]
echo "  plan: $(actions "$W/persistb1.json")"
checkc "B: removes nothing" '! actions "$W/persistb1.json" | grep -q remove_file'
STATE_B=$(ls "$R"/etc/pmem-stack/state.d/pmem-lin-*.json 2>/dev/null)
echo "  saved states: $(cd "$R/etc/pmem-stack/state.d" && echo *)"
checkc "B: its own saved state, beside A's" '[ -f "$STATE_B" ] && [ -f "$STATE_A" ] && [ "$(ls "$R/etc/pmem-stack/state.d" | wc -l)" = 2 ]'
checkc "B: its own mount unit, enabled" 'grep -q "^What=/dev/mapper/pmem-lin$" "$R/etc/systemd/system/mnt-b.mount" && [ -L "$R/etc/systemd/system/local-fs.target.wants/mnt-b.mount" ]'
checkc "B: A's saved state, unit and link untouched" 'sha256sum -c --quiet "$W/a-files.sha256" && [ -L "$R/etc/systemd/system/local-fs.target.wants/mnt-pmem.mount" ]'
INST_B="pmem-stack@$(basename "$STATE_B" .json).service"
checkc "B: its own replay instance, enabled, which its unit requires; A's stays" '[ "$(readlink "$R/etc/systemd/system/local-fs-pre.target.wants/$INST_B")" = /etc/systemd/system/pmem-stack@.service ] && grep -qxF "Requires=$INST_B" "$R/etc/systemd/system/mnt-b.mount" && [ -L "$R/etc/systemd/system/local-fs-pre.target.wants/$INST_A" ] && [ "$(ls "$R/etc/systemd/system/local-fs-pre.target.wants" | grep -c "^pmem-stack@")" = 2 ] && [ ! -e "$R/etc/systemd/system/pmem-stack.service" ]'
( cd "$R" && systemd-analyze verify --root="$R" etc/systemd/system/pmem-stack@.service etc/systemd/system/mnt-b.mount ) > "$W/verify-b.txt" 2>&1
echo $? > "$W/verify-b.rc"; sed 's/^/  ! /' "$W/verify-b.txt"
check "systemd-analyze verify passes on B's unit" [ "$(cat "$W/verify-b.rc")" = 0 ]
module persista3 "$ARGS"
checkc "A run again after B: unchanged, no process started" '[ "$(jv "$W/persista3.json" changed)" = false ] && [ -z "$(spawns persista3)" ]'
module persistb2 "$ARGS_B"
checkc "B run again: unchanged, no process started" '[ "$(jv "$W/persistb2.json" changed)" = false ] && [ -z "$(spawns persistb2)" ]'
section "data, and what the first boot saw"
head -c 16M /dev/urandom > /mnt/pmem/data && sync
(cd /mnt/pmem && sha256sum data) > "$KEEP/data.sha256"
echo "pm0=$(ns_blk pm0) pm1=$(ns_blk pm1)" > "$KEEP/boot1.txt"
dmtable pmem-striped >> "$KEEP/boot1.txt"
cat "$KEEP/boot1.txt"
head -c 8M /dev/urandom > /mnt/b/data-b && sync
(cd /mnt/b && sha256sum data-b) > "$KEEP/data-b.sha256"
umount /mnt/pmem
umount /mnt/b
summary
