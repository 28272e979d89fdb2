#!/bin/bash
# PMEM without labels, boot 2 of 2 (systemd as PID 1), the DIMMs enumerated the other
# way: systemd brought both stacks back by itself (the names found by address range),
# the data is intact, each run is unchanged; then `state: absent` with allow_data_loss
# on this booted host: mounts gone from every mount namespace, dm devices, units, saved
# states and the name records gone, the namespaces raw again; then a converge again.
source "$(dirname "$0")/label-less-lib.sh"
stacks
L0NOW=$(region_at "$(cat "$KEEP/l0.addr")"); M0NOW=$(region_at "$(cat "$KEEP/m0.addr")"); M1NOW=$(region_at "$(cat "$KEEP/m1.addr")")
section "what systemd did at this boot"
for m in mnt-m.mount mnt-l.mount; do
  echo "  $m: $(prop $m ActiveState)/$(prop $m SubState)/$(prop $m Result)"
  checkc "$m: active (mounted)" '[ "$(prop $m ActiveState)/$(prop $m SubState)" = active/mounted ]'
done
checkc "/mnt/m and /mnt/l mounted with dax=always" 'grep -q " /mnt/m .*dax=always" /proc/self/mountinfo && grep -q " /mnt/l .*dax=always" /proc/self/mountinfo'
checkc "data intact on both (sha256)" '(cd /mnt/m && sha256sum -c --quiet "$KEEP/m.sha256") && (cd /mnt/l && sha256sum -c --quiet "$KEEP/l.sha256")'
for k in l0 l1; do echo "  $k: region $(cat "$KEEP/$k") at boot 1, $(region_at "$(cat "$KEEP/$k.addr")") now"; done
for k in m0 m1; do echo "  $k: region $(cat "$KEEP/$k") at boot 1, $(region_at "$(cat "$KEEP/$k.addr")") now"; done
checkc "the regions are numbered otherwise than at boot 1 (the declared region names now lead elsewhere)" '[ "$(region_at "$(cat "$KEEP/l0.addr")")" != "$(cat "$KEEP/l0")" ]'
dmsetup table ll-linear | sed 's/^/  ll-linear: /'
checkc "the linear table starts on l0 (found at its address, now $L0NOW)" '[ "$(dmsetup table ll-linear | head -1 | awk "{print \$4}")" = "$(devno "$(blk_of_region "$L0NOW")")" ]'
module m4 "$ARGS_M"; module l4 "$ARGS_L"
echo "  warnings: $(jv "$W/m4.json" warnings) $(jv "$W/l4.json" warnings)"
checkc "the runs found each namespace at its address, in another region than declared, and said so" '{ grep -q "namespace m0 is in $M0NOW, declared in $M0: kept where it is" "$W/m4.json" || [ "$M0NOW" = "$M0" ]; } && grep -q "namespace l0 is in $L0NOW, declared in $L0: kept where it is" "$W/l4.json"'
checkc "each run: changed false, no process started" '[ "$(rc_of m4)$(rc_of l4)" = 00 ] && [ "$(jv "$W/m4.json" changed)" = false ] && [ "$(jv "$W/l4.json" changed)" = false ] && [ -z "$(spawns m4)$(spawns l4)" ]'

section "state: absent on the booted host"
module mabs "$(with_key "$ARGS_M" '{"state":"absent","allow_data_loss":true}')"
module labs "$(with_key "$ARGS_L" '{"state":"absent","allow_data_loss":true}')"
checkc "both torn down: rc 0" '[ "$(rc_of mabs)" = 0 ] && [ "$(rc_of labs)" = 0 ]'
for p in /proc/[0-9]*; do
  n=$(readlink "$p/ns/mnt" 2>/dev/null) || continue
  echo "$n $(basename "$p") $(cat "$p/comm" 2>/dev/null)"
done | sort -u -k1,1 | sed 's/^/  mount namespace: /'
checkc "no mount namespace holds /mnt/m or /mnt/l" '[ -z "$(mounted_anywhere /mnt/m)$(mounted_anywhere /mnt/l)" ]'
checkc "no dm device of theirs left" '! dmsetup ls | grep -q -e mm-striped -e ll-linear'
checkc "units, saved states and name records gone" '[ ! -e "$UNITS/mnt-m.mount" ] && [ ! -e "$UNITS/mnt-l.mount" ] && [ -z "$(ls /etc/pmem-stack/state.d 2>/dev/null)" ] && [ -z "$(ls "$NAMES" 2>/dev/null)" ]'
for r in $M0NOW $M1NOW $L0NOW; do echo "  $r: $(mode_of_region "$r") $(blk_of_region "$r")"; done
checkc "the namespaces are as the kernel gives them: memmap page-mapped, DIMMs raw, each with its block device" '[ "$(mode_of_region "$M0NOW")" = fsdax/mem/ ] && [ "$(mode_of_region "$M1NOW")" = fsdax/mem/ ] && [ "$(mode_of_region "$L0NOW")" = raw// ] && [ -n "$(blk_of_region "$L0NOW")" ]'
module mabs2 "$(with_key "$ARGS_M" '{"state":"absent","allow_data_loss":true}')"
checkc "absent again: rc 0, changed false" '[ "$(rc_of mabs2)" = 0 ] && [ "$(jv "$W/mabs2.json" changed)" = false ]'
section "converge again"
module m5 "$ARGS_M"
checkc "converge after the teardown: rc 0, changed" '[ "$(rc_of m5)" = 0 ] && [ "$(jv "$W/m5.json" changed)" = true ] && grep -q " /mnt/m .*dax=always" /proc/self/mountinfo'
module m6 "$ARGS_M"
checkc "and again: rc 0, changed false" '[ "$(rc_of m6)" = 0 ] && [ "$(jv "$W/m6.json" changed)" = false ]'
summary
