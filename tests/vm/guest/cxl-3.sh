#!/bin/bash
# CXL boots, boot 3 of 3 (runs INSIDE the guest, systemd as PID 1), both memory devices
# back. Nothing is run by hand before the checks: the stack's replay assembled cx0 again
# by serial (whatever memN each is at this boot), the namespace came back from its
# labels, the dm table was loaded again, the mount unit mounted it with DAX, and the data
# written at boot 1 is intact.
# Then the module is unchanged, and the stack is torn down on the booted host.
source "$(dirname "$0")/cxl-lib.sh"
R=$(replay_of mnt-cx.mount)
section "what systemd did at this boot"
show "$R" mnt-cx.mount
journal "the replay service and the mount" -u "$R" -u mnt-cx.mount
cxl list -M | tr -d '\n ' | sed 's/^/  cxl list -M: /'; echo
cxl list -R -u | tr -d '\n ' | sed 's/^/  cxl list -R: /'; echo
ndctl list -N | tr -d '\n ' | sed 's/^/  ndctl list -N: /'; echo
facts f0
cxl_regions f0 | sed 's/^/  facts: /'
checkc "$R: active (exited), result success" '[ "$(prop "$R" ActiveState)/$(prop "$R" SubState)/$(prop "$R" Result)" = active/exited/success ]'
checkc "the region was assembled again over serial 0x2 then 0x1, committed" 'assembled f0'
echo "  dm table: $(dmtable pmem-cx); pm0 $(ns_blk pm0)"
checkc "mnt-cx.mount: active (mounted), with DAX, from pmem-cx linear over pm0 (back from its labels)" '[ "$(prop mnt-cx.mount ActiveState)/$(prop mnt-cx.mount SubState)" = active/mounted ] && findmnt -no OPTIONS /mnt/cx | grep -q dax && [ "$(findmnt -no SOURCE /mnt/cx)" = /dev/mapper/pmem-cx ] && dmtable pmem-cx | grep -q "linear $(devno "$(ns_blk pm0)") [0-9]*$"'
checkc "the data written at boot 1 is intact" 'sha256sum -c --quiet "$KEEP/cx.sha256"'
module s3 "$(with "$ARGS_X" '"verify_pmd":true')"
echo "  pmd_faults: $(jv "$W/s3.json" pmd_faults)"
checkc "the module: unchanged, no process started, 2 MiB faults" '[ "$(rc_of s3)" = 0 ] && [ "$(jv "$W/s3.json" changed)" = false ] && [ -z "$(spawns s3)" ] && [ "$(jv "$W/s3.json" "pmd_faults./mnt/cx.nopage")" -gt 0 ]'

section "teardown on the booted host (state: absent, allow_data_loss)"
module t1 "$(with "$ARGS_X" '"state":"absent","allow_data_loss":true')"
checkc "torn down: unmounted, namespace destroyed, region taken apart, boot files gone" '[ "$(rc_of t1)" = 0 ] && ! findmnt /mnt/cx >/dev/null && [ -z "$(ndctl list -N)" ] && no_cxl_region && [ ! -f "$UNITS/mnt-cx.mount" ] && [ -z "$(ls /etc/pmem-stack/state.d/ 2>/dev/null)" ]'
actions "$W/t1.json" | sed 's/^/  teardown: /'
checkc "the teardown's plan: umount, remove_dm, destroy_namespace, destroy_cxl_region (after the namespace), the boot files" 'a=$(actions "$W/t1.json"); case $a in *umount*remove_dm*destroy_namespace,destroy_cxl_region) true;; *) false;; esac && echo "$a" | grep -q remove_file'
module t2 "$(with "$ARGS_X" '"state":"absent","allow_data_loss":true')"
checkc "again: unchanged" '[ "$(rc_of t2)" = 0 ] && [ "$(jv "$W/t2.json" changed)" = false ]'
summary
