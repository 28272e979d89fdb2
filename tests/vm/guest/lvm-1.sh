#!/bin/bash
# LVM boots, boot 1 of 2 (runs INSIDE the guest, systemd as PID 1, lvm2 installed, three
# DIMMs): LVM over fsdax namespaces.
# 1. Built by hand the way most people do (LVM's defaults: the data area at 1 MiB): the
#    module recognises the declared VG and LV as they are (it rebuilds nothing), its
#    audit names the PV layer, and the 2 MiB faults fall back.
# 2. A linear LV over two namespaces grown by a third: the VG and the LV grow, the data
#    stays.
# 3. The persisted stack from nothing: a striped LV (2 stripes of 2 MiB) with xfs and DAX:
#    check mode, converge, idempotent (no process started), 2 MiB faults, the audit, the
#    facts, and a stripe change over its data refused. Its data and checksum are kept for
#    boot 2 (the DIMMs reversed).
source "$(dirname "$0")/lvm-lib.sh"
ndctl disable-region all >/dev/null && ndctl init-labels -f all >/dev/null && ndctl enable-region all >/dev/null
echo "  $(lvm version | head -1)"
NSONLY="{\"namespaces\":$NS2}"

section "LVM's defaults, by hand (pvcreate, vgcreate, lvcreate -i 2 -I 2m), then declared"
module ns "$NSONLY"
check "namespaces made: rc 0" [ "$(rc_of ns)" = 0 ]
P0=/dev/$(ns_blk pm0); P1=/dev/$(ns_blk pm1)
lvm pvcreate -q -y "$P0" "$P1" >/dev/null && lvm vgcreate -q -y vgd "$P0" "$P1" >/dev/null \
  && lvm lvcreate -q -y -i 2 -I 2m -l 100%FREE -n lvd vgd >/dev/null && udevadm settle
echo "  pe_start: $(pe_starts); dm table: $(dmtable vgd-lvd)"
lv_field vgd/lvd lv_uuid > "$W/lvd.uuid"
mkfs.xfs -q -f -m reflink=0 -d su=2m,sw=2 /dev/vgd/lvd && mkdir -p /mnt/d && mount -o dax=always /dev/vgd/lvd /mnt/d && xfs_io -c "extsize 2m" /mnt/d
check "by hand: LVM put the data area at 1 MiB" [ "$(lvm pvs --noheadings -o pe_start --units b --nosuffix "$P0" | tr -d ' ')" = 1048576 ]
DEFAULTS="{\"namespaces\":$NS2,\"volume_groups\":[{\"name\":\"vgd\",\"pvs\":[\"pm0\",\"pm1\"]}],\"logical_volumes\":[{\"name\":\"lvd\",\"vg\":\"vgd\",\"stripes\":2}],\"filesystems\":[{\"device\":\"vgd/lvd\",\"type\":\"xfs\"}],\"mounts\":[{\"path\":\"/mnt/d\",\"device\":\"vgd/lvd\",\"dax\":\"always\"}],\"verify_pmd\":true}"
module defaults_check "$(with "$DEFAULTS" '"_ansible_check_mode":true')"
echo "  check mode plan: $(actions "$W/defaults_check.json")"
checkc "declared as built: nothing to make or remake (at most the largest I/O raised)" '[ -z "$(actions "$W/defaults_check.json" | tr "," "\n" | grep -v -x -e raise_max_sectors -e "")" ]'
module defaults "$DEFAULTS"
layers "$W/defaults.json"
echo "  pmd_faults: $(jv "$W/defaults.json" pmd_faults)"
checkc "LVM's defaults: the audit names the PV layer (data area at 1 MiB)" '[[ ",$(bad_layers "$W/defaults.json")," == *,pv,* ]]'
checkc "LVM's defaults: the PV layer's fix is pvcreate --dataalignment 2m" 'grep -q "dataalignment 2m" "$W/defaults.json"'
checkc "LVM's defaults: the 2 MiB faults fell back, none mapped (verify_pmd fails the run)" '[ "$(rc_of defaults)" = 1 ] && [ "$(jv "$W/defaults.json" "pmd_faults./mnt/d.nopage")" = 0 ] && [ "$(jv "$W/defaults.json" "pmd_faults./mnt/d.fallback")" -gt 0 ]'
checkc "LVM's defaults: the LV is the one made by hand (same uuid, 2 stripes)" '[ -s "$W/lvd.uuid" ] && [ "$(lv_field vgd/lvd lv_uuid)" = "$(cat "$W/lvd.uuid")" ] && [ "$(lv_field vgd/lvd stripes)" = 2 ]'
module defaults_down "$(with "$DEFAULTS" '"state":"absent","allow_data_loss":true')"
echo "  pe_start after teardown: $(pe_starts)"
checkc "teardown (absent, allow_data_loss): the LV, the VG and the PV labels are gone" '[ "$(rc_of defaults_down)" = 0 ] && ! lvm vgs vgd >/dev/null 2>&1 && [ -z "$(pe_starts | tr -d " ")" ] && ! mountpoint -q /mnt/d'

section "a linear LV over two namespaces, grown by a third"
LINEAR="{\"namespaces\":$NS2,\"volume_groups\":[{\"name\":\"vgl\",\"pvs\":[\"pm0\",\"pm1\"]}],\"logical_volumes\":[{\"name\":\"lvl\",\"vg\":\"vgl\"}],\"filesystems\":[{\"device\":\"vgl/lvl\",\"type\":\"ext4\"}],\"mounts\":[{\"path\":\"/mnt/l\",\"device\":\"vgl/lvl\",\"dax\":\"always\"}]}"
module lin1 "$LINEAR"
echo "  pe_start: $(pe_starts)"
check "linear over two: rc 0" [ "$(rc_of lin1)" = 0 ]
write_data /mnt/l/data "$W/lin.sha256"
SIZE1=$(lv_field vgl/lvl lv_size)
LINEAR3="{\"namespaces\":$NS3,\"volume_groups\":[{\"name\":\"vgl\",\"pvs\":[\"pm0\",\"pm1\",\"pm2\"]}],\"logical_volumes\":[{\"name\":\"lvl\",\"vg\":\"vgl\"}],\"filesystems\":[{\"device\":\"vgl/lvl\",\"type\":\"ext4\"}],\"mounts\":[{\"path\":\"/mnt/l\",\"device\":\"vgl/lvl\",\"dax\":\"always\"}]}"
module lin2 "$LINEAR3"
SIZE2=$(lv_field vgl/lvl lv_size)
echo "  LV size $SIZE1 -> $SIZE2 B"
checkc "grown by pm2: the namespace, its PV, vgextend, lvextend, nothing destructive" '[ "$(rc_of lin2)" = 0 ] && [ "$(actions "$W/lin2.json")" = "create_namespace,create_pv,extend_vg,extend_lv" ] && ! grep -q "\"destructive\":true" "$W/lin2.json"'
checkc "the LV grew by about a DIMM and its data is intact" '[ "$SIZE2" -gt $((SIZE1 + 900 * 1024 * 1024)) ] && sha256sum -c --quiet "$W/lin.sha256"'
module lin3 "$LINEAR3"
checkc "grown: again unchanged, no process started" '[ "$(jv "$W/lin3.json" changed)" = false ] && [ -z "$(spawns lin3)" ]'
module lin_down "$(with "$LINEAR3" '"state":"absent","allow_data_loss":true')"
checkc "linear torn down: no VG, no PV label, no namespace" '[ "$(rc_of lin_down)" = 0 ] && ! lvm vgs vgl >/dev/null 2>&1 && [ -z "$(pe_starts | tr -d " ")" ] && [ -z "$(ns_blk pm2)" ]'

section "the persisted striped stack from nothing"
checkc "the playbook declares the stack this suite checks" '"$VENV/bin/python" -c "import json,sys,yaml; assert yaml.safe_load(open(sys.argv[1]))[0][\"tasks\"][0][\"pmem_stack\"] == json.loads(sys.argv[2])" "$REPO/playbooks/$PLAYBOOK" "$ARGS_S"'
play p_check --check --diff
sed -n '/^TASK/,/^PLAY RECAP/p' "$W/p_check.log" | grep -E "^(\+\+\+|---) " | sed 's/^/    /'
checkc "ansible-playbook --check --diff: changed=1, the VG and LV in the diff, nothing made" '[ "$(cat "$W/p_check.rc")" = 0 ] && [ "$(recap p_check changed)" = 1 ] && grep -q "volume group vgp" "$W/p_check.log" && grep -q "logical volume vgp/lvs" "$W/p_check.log" && ! lvm vgs vgp >/dev/null 2>&1'
module s_check "$(with "$ARGS_S" '"_ansible_check_mode":true')"
echo "  check mode plan: $(actions "$W/s_check.json")"
checkc "check mode: changed, nothing made (no VG, no namespace)" '[ "$(rc_of s_check)" = 0 ] && [ "$(jv "$W/s_check.json" changed)" = true ] && ! lvm vgs vgp >/dev/null 2>&1 && [ -z "$(ns_blk pm0)" ]'
module s1 "$(with "$ARGS_S" '"verify_pmd":true')"
layers "$W/s1.json"
echo "  pe_start: $(pe_starts); lvs: stripes $(lv_field vgp/lvs stripes) stripe_size $(lv_field vgp/lvs stripe_size); dm table: $(dmtable vgp-lvs); max_sectors_kb $(lv_max_kb vgp/lvs)"
echo "  pmd_faults: $(jv "$W/s1.json" pmd_faults)"
check "converge: rc 0" [ "$(rc_of s1)" = 0 ]
checkc "converge: the plan check mode showed" '[ "$(actions "$W/s1.json")" = "$(actions "$W/s_check.json")" ]'
checkc "PVs made with the data area at 2 MiB" '[ "$(pe_starts)" = "$(printf "%s=2097152 " $(lvm pvs --noheadings -o pv_name | sort))" ]'
checkc "LV: 2 stripes of 2 MiB" '[ "$(lv_field vgp/lvs stripes)" = 2 ] && [ "$(lv_field vgp/lvs stripe_size)" = 2097152 ]'
checkc "LV: largest I/O raised to at least the stripe (max_sectors_kb >= 2048)" '[ "$(lv_max_kb vgp/lvs)" -ge 2048 ]'
checkc "aligned LVM: every layer of the audit allows 2 MiB faults" '[ -z "$(bad_layers "$W/s1.json")" ] && grep -q "\"layer\":\"pv\"" "$W/s1.json"'
checkc "aligned LVM: 2 MiB faults mapped (NOPAGE > 0), none fell back" '[ "$(jv "$W/s1.json" "pmd_faults./mnt/s.nopage")" -gt 0 ] && [ "$(jv "$W/s1.json" "pmd_faults./mnt/s.fallback")" = 0 ]'
section "killed in the middle of each LVM step, the next run converges"
# the middle of each LVM command and I/O raise of the converge above (its timing; a raise
# the kernel made unneeded is not run, so 6.12 has one aim fewer), from the same starting
# point: the stack torn down, its namespaces destroyed. timeout(1) kills its process
# group: the module and the lvm command it runs, mid-way (as a power cut would)
MIDS=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(" ".join("%s:%.3f" % (o["op"], (o["start_ms"] + o["ms"] / 2) / 1000) for o in r["timing"]["operations"] if o["op"] in ("lvm", "set_max_sectors")))' "$W/s1.json")
echo "  aims: $MIDS"
HIT=0
for m in $MIDS; do
  op=${m%%:*}; at=${m#*:}
  module "k_down_$at" "$(with "$ARGS_S" '"state":"absent","allow_data_loss":true')" >/dev/null
  printf '%s' "$ARGS_S" > "$W/k_$at.args"
  timeout -s KILL "$at" "$BIN" "$W/k_$at.args" > "$W/k_$at.json" 2>/dev/null
  krc=$?
  [ "$krc" = 137 ] && HIT=$((HIT + 1))
  echo "  --- kill at $at s ($op): $([ "$krc" = 137 ] && echo killed || echo "the run had ended (rc $krc)"); left: VG $(lvm vgs --noheadings -o vg_name 2>/dev/null | tr -d ' ') LV $(lvm lvs --noheadings -o lv_name,lv_active 2>/dev/null | tr -s ' ')"
  module "k_re_$at" "$ARGS_S"
  module "k_again_$at" "$ARGS_S"
  checkc "killed at $at s ($op): the next run converges, the one after is unchanged, the LV mounted with DAX" '[ "$(rc_of "k_re_$at")" = 0 ] && [ "$(jv "$W/k_again_$at.json" changed)" = false ] && [ "$(lv_field vgp/lvs stripes)" = 2 ] && findmnt -no OPTIONS /mnt/s | grep -q dax && [ "$(lv_max_kb vgp/lvs)" -ge 2048 ]'
done
checkc "at least 3 of the kills hit a live run" '[ "$HIT" -ge 3 ]'
# a pvcreate stopped between its label and its metadata area's header (a kill above can
# land there; one did, on 6.12): LVM refuses every command on that PV (pvcreate -ff,
# pvremove -ff, vgcreate: "bad metadata header"). It holds nothing: the next run zeroes
# its label, makes it again and converges
module k_pv_down "$(with "$ARGS_S" '"state":"absent","allow_data_loss":true')" >/dev/null
module k_pv_ns "{\"namespaces\":$NS2}" >/dev/null
V1=/dev/$(ns_blk pm1)
lvm pvcreate -q --dataalignment 2m "$V1" >/dev/null
dd if=/dev/zero of="$V1" bs=512 seek=8 count=1 oflag=direct status=none
lvm pvremove -ff -y "$V1" > "$W/k_pv.lvm" 2>&1; echo "rc $?" >> "$W/k_pv.lvm"
echo "  left: lvm pvremove -ff: $(grep -E "bad metadata header|^rc" "$W/k_pv.lvm" | sort -u | tr '\n' ';')"
module k_pv "$ARGS_S"
module k_pv_again "$ARGS_S"
echo "  next run: $(actions "$W/k_pv.json")"
checkc "pvcreate stopped before its metadata area: LVM refuses it, the next run zeroes its label and converges, the one after is unchanged" 'grep -q "bad metadata header" "$W/k_pv.lvm" && grep -qx "rc 5" "$W/k_pv.lvm" && [ "$(rc_of k_pv)" = 0 ] && actions "$W/k_pv.json" | grep -q "remove_pv,create_pv" && ! grep -q "\"destructive\":true" "$W/k_pv.json" && [ "$(jv "$W/k_pv_again.json" changed)" = false ] && [ "$(lv_field vgp/lvs stripes)" = 2 ] && findmnt -no OPTIONS /mnt/s | grep -q dax'
# a vgcreate stopped between its PVs' metadata writes (a kill above can land there): the
# VG's metadata on the first PV lists both, the second keeps its label and no metadata
# (its head put back as pvcreate left it). LVM counts it in the VG and refuses to vgextend
# it; the next run must not try, and converges
module k_vg_down "$(with "$ARGS_S" '"state":"absent","allow_data_loss":true')" >/dev/null
module k_vg_ns "{\"namespaces\":$NS2}" >/dev/null
V0=/dev/$(ns_blk pm0); V1=/dev/$(ns_blk pm1)
lvm pvcreate -q --dataalignment 2m "$V0" "$V1" >/dev/null
dd if="$V1" of="$W/pv1.head" bs=1M count=3 iflag=direct status=none
lvm vgcreate -q -s 4m vgp "$V0" "$V1" >/dev/null
dd if="$W/pv1.head" of="$V1" bs=1M count=3 oflag=direct status=none
echo "  left: $(lvm pvs --noheadings -o pv_name,vg_name 2>&1 | tr -s ' ' | tr '\n' ';')"
module k_vg "$ARGS_S"
module k_vg_again "$ARGS_S"
echo "  next run: $(actions "$W/k_vg.json")"
checkc "vgcreate stopped between its PVs: no vgextend, the next run converges, the one after is unchanged" '[ "$(rc_of k_vg)" = 0 ] && ! actions "$W/k_vg.json" | grep -q extend_vg && [ "$(jv "$W/k_vg_again.json" changed)" = false ] && [ "$(lv_field vgp/lvs stripes)" = 2 ] && findmnt -no OPTIONS /mnt/s | grep -q dax'

module s2 "$ARGS_S"
checkc "again: unchanged, no process started" '[ "$(jv "$W/s2.json" changed)" = false ] && [ -z "$(spawns s2)" ]'
play p_again
checkc "ansible-playbook again: ok=1 changed=0" '[ "$(cat "$W/p_again.rc")" = 0 ] && [ "$(recap p_again ok)" = 1 ] && [ "$(recap p_again changed)" = 0 ]'
facts facts
checkc "--facts: the VG, its PVs and the LV" 'python3 -c "import json,sys; d=json.load(open(sys.argv[1]))[\"ansible_facts\"][\"pmem_stack\"][\"lvm\"]; g=[v for v in d[\"vgs\"] if v[\"name\"]==\"vgp\"][0]; assert len(g[\"pvs\"])==2 and g[\"lvs\"][0][\"name\"]==\"lvs\"" "$W/facts.json"'
write_data /mnt/s/data "$KEEP/s.sha256"
cp "$KEEP/s.sha256" "$W/s.sha256"
lv_field vgp/lvs lv_uuid > "$KEEP/lvs.uuid"
module s_linear "${ARGS_S//\"stripes\":2/\"stripes\":1}"
echo "  msg: $(jv "$W/s_linear.json" msg)"
checkc "a stripe change over the data is refused, naming what is lost and allow_data_loss" '[ "$(rc_of s_linear)" = 1 ] && grep -q "the data on logical volume vgp/lvs" "$W/s_linear.json" && grep -q "allow_data_loss" "$W/s_linear.json"'
checkc "refused: nothing ran, the LV and its data as they were" '[ -z "$(spawns s_linear)" ] && [ "$(lv_field vgp/lvs stripes)" = 2 ] && sha256sum -c --quiet "$W/s.sha256"'
checkc "the mount unit mounts the LV by /dev/vgp/lvs" 'grep -q "^What=/dev/vgp/lvs$" $UNITS/mnt-s.mount'
summary
