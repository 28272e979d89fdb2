#!/bin/bash
# LVM boots, boot 2 of 2 (runs INSIDE the guest, systemd as PID 1), the DIMMs enumerated
# in reverse. Nothing is run by hand before the checks: LVM activated the LV by itself,
# the stack's replay service raised its largest I/O (the kernel sets it anew at every
# activation) and its mount unit mounted it with DAX. Then: the data intact, the module
# unchanged, 2 MiB faults, and the stack torn down on the booted host.
source "$(dirname "$0")/lvm-lib.sh"
R=$(replay_of mnt-s.mount)
section "what systemd and LVM did at this boot"
show "$R" mnt-s.mount local-fs.target
journal "the replay service and the mount" -u "$R" -u mnt-s.mount
journal "LVM's activation" -t lvm -t lvm-activate-vgp -u 'lvm-activate-*'
echo "  pe_start: $(pe_starts); dm table: $(dmtable vgp-lvs); max_sectors_kb $(lv_max_kb vgp/lvs)"
echo "  namespaces: pm0 $(ns_dev pm0) ($(ns_blk pm0)), pm1 $(ns_dev pm1) ($(ns_blk pm1))"
checkc "the DIMMs are reversed: pm0 or pm1 is in another region than at boot 1" '[ "$(ns_dev pm0)" != namespace0.0 ] || [ "$(ns_dev pm1)" != namespace1.0 ]'
checkc "$R: active (exited), result success" '[ "$(prop "$R" ActiveState)/$(prop "$R" SubState)/$(prop "$R" Result)" = active/exited/success ]'
checkc "mnt-s.mount: active (mounted), with DAX" '[ "$(prop mnt-s.mount ActiveState)/$(prop mnt-s.mount SubState)" = active/mounted ] && findmnt -no OPTIONS /mnt/s | grep -q dax'
systemctl show -p What,BindsTo,Requires,After mnt-s.mount | sed 's/^/  mnt-s.mount: /'
# systemd names the device from the unit's What= (/dev/vgp/lvs) or, once mounted, from
# mountinfo's source (/dev/mapper/vgp-lvs): either is the LV's device unit
LVDEV=$(systemctl show -p SysFSPath --value dev-vgp-lvs.device)
echo "  dev-vgp-lvs.device: $LVDEV"
# the units in a dependency list of mnt-s.mount, one per line, as systemd names them
# (systemctl show quotes a name with an escape, and doubles its backslash)
deps_of() { systemctl show -p "$1" --value mnt-s.mount | tr " " "\n" | tr -d '"' | sed 's/\\\\/\\/g'; }
lv_device_dep() {
  local u
  [ -n "$LVDEV" ] || return 1
  for u in $(deps_of After | grep "\.device$"); do
    if [ "$(systemctl show -p SysFSPath --value "$u")" = "$LVDEV" ] && deps_of Requires | grep -qxF "$u"; then
      echo "  the LV's device unit: $u"
      return 0
    fi
  done
  return 1
}
check "mnt-s.mount requires and is ordered after the LV's device" lv_device_dep
checkc "the LV is the one made at boot 1 (same uuid), active" '[ "$(lv_field vgp/lvs lv_uuid)" = "$(cat "$KEEP/lvs.uuid")" ] && [ -b /dev/vgp/lvs ]'
checkc "its largest I/O was raised at boot (max_sectors_kb >= 2048)" '[ "$(lv_max_kb vgp/lvs)" -ge 2048 ]'
checkc "the data written at boot 1 is intact" 'sha256sum -c --quiet "$KEEP/s.sha256"'
module s_again "$ARGS_S"
checkc "the module: unchanged, no process started" '[ "$(rc_of s_again)" = 0 ] && [ "$(jv "$W/s_again.json" changed)" = false ] && [ -z "$(spawns s_again)" ]'
module s_pmd "$(with "$ARGS_S" '"verify_pmd":true')"
echo "  pmd_faults: $(jv "$W/s_pmd.json" pmd_faults)"
checkc "2 MiB faults on the booted stack (NOPAGE > 0, none fell back)" '[ "$(rc_of s_pmd)" = 0 ] && [ "$(jv "$W/s_pmd.json" "pmd_faults./mnt/s.nopage")" -gt 0 ] && [ "$(jv "$W/s_pmd.json" "pmd_faults./mnt/s.fallback")" = 0 ]'

section "teardown on the booted host (state: absent, allow_data_loss)"
module s_down "$(with "$ARGS_S" '"state":"absent","allow_data_loss":true')"
echo "  plan: $(actions "$W/s_down.json")"
check "teardown: rc 0" [ "$(rc_of s_down)" = 0 ]
checkc "the mount, the LV, the VG and the PV labels are gone" '! mountpoint -q /mnt/s && ! lvm vgs vgp >/dev/null 2>&1 && [ -z "$(pe_starts | tr -d " ")" ]'
checkc "the mount unit, the saved state and the replay link are gone" '[ ! -e $UNITS/mnt-s.mount ] && [ -z "$(ls /etc/pmem-stack/state.d 2>/dev/null)" ] && [ -z "$(ls $UNITS/*.wants/pmem-stack@* 2>/dev/null)" ]'
module s_down2 "$(with "$ARGS_S" '"state":"absent","allow_data_loss":true')"
checkc "teardown again: unchanged, no process started" '[ "$(jv "$W/s_down2.json" changed)" = false ] && [ -z "$(spawns s_down2)" ]'
summary
