#!/bin/bash
# PMEM without labels, boot 1 of 2 (systemd as PID 1): memmap ranges and DIMMs without a
# label area: facts, check mode, converge, idempotence (no process started), data
# written between runs and checked by checksum, 2 MiB faults on the memmap stack, the
# refusals of what a label-less region cannot do; both stacks persisted for boot 2.
source "$(dirname "$0")/label-less-lib.sh"
section "the regions"
ndctl list -RN | sed 's/^/  /'
set -- $(regions_with 0); echo "$1" > "$KEEP/m0"; echo "$2" > "$KEEP/m1"
set -- $(regions_with 1); echo "$1" > "$KEEP/l0"; echo "$2" > "$KEEP/l1"
for k in m0 m1 l0 l1; do cat "/sys/bus/nd/devices/$(cat "$KEEP/$k")/resource" > "$KEEP/$k.addr"; done
stacks
echo "  memmap: $M0 $M1; DIMMs without labels: $L0 $L1"
checkc "two memmap regions (no mappings) and two label-less DIMM regions" '[ -n "$M1" ] && [ -n "$L1" ]'
facts f1; echo "  facts rc=$?"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); f=d["ansible_facts"]["pmem_stack"]; [print("  region %s labels=%s start=%s size=%s available=%s" % (r["name"], r["labels"], hex(r.get("start",0)), r["size"], r["available_size"])) for r in f["regions"]]' "$W/f1.json"
checkc "--facts: four regions, none with labels, each with its address" 'python3 -c "import json,sys; f=json.load(open(sys.argv[1]))[\"ansible_facts\"][\"pmem_stack\"]; r=f[\"regions\"]; sys.exit(0 if len(r)==4 and all(not x[\"labels\"] and x.get(\"start\") for x in r) else 1)" "$W/f1.json"'

section "memmap: check mode changes nothing"
before=$(ndctl list -N)
module mcheck "$(with_key "$ARGS_M" '{"_ansible_check_mode":true}')"
checkc "check mode: rc 0, changed, the plan records each name before converting it" '[ "$(rc_of mcheck)" = 0 ] && [ "$(jv "$W/mcheck.json" changed)" = true ] && actions "$W/mcheck.json" | grep -q "^record_name,reconfigure_namespace,record_name,reconfigure_namespace,create_dm,"'
checkc "check mode: no namespace changed, no name recorded, no program started" '[ "$(ndctl list -N)" = "$before" ] && [ ! -e "$NAMES" ] && [ -z "$(spawns mcheck)" ]'

section "memmap: converge, then again"
module m1 "$ARGS_M"
checkc "converge: rc 0, changed, the plan as check mode said" '[ "$(rc_of m1)" = 0 ] && [ "$(jv "$W/m1.json" changed)" = true ] && [ "$(actions "$W/m1.json")" = "$(actions "$W/mcheck.json")" ]'
ndctl list -RN -r "$M0" | sed 's/^/  /'
checkc "both ranges fsdax with the page map on the device, 2 MiB aligned" '[ "$(mode_of_region "$M0")" = fsdax/dev/2097152 ] && [ "$(mode_of_region "$M1")" = fsdax/dev/2097152 ]'
ls -l "$NAMES" | sed 's/^/  /'; cat "$NAMES"/m0.json | sed 's/^/  m0.json: /'
checkc "the names are recorded by address range" 'grep -q "\"start\":$(( $(cat "$KEEP/m0.addr") ))" "$NAMES/m0.json" && grep -q "\"start\":$(( $(cat "$KEEP/m1.addr") ))" "$NAMES/m1.json"'
checkc "/mnt/m mounted with dax=always" 'grep -q " /mnt/m .*dax=always" /proc/self/mountinfo'
module m2 "$ARGS_M"
checkc "second run: changed false, no process started" '[ "$(rc_of m2)" = 0 ] && [ "$(jv "$W/m2.json" changed)" = false ] && [ -z "$(spawns m2)" ]'
dd if=/dev/urandom of=/mnt/m/data bs=1M count=64 status=none && sync
(cd /mnt/m && sha256sum data) > "$KEEP/m.sha256"
module m3 "$(with_key "$ARGS_M" '{"verify_pmd":true}')"
echo "  pmd_faults: $(jv "$W/m3.json" pmd_faults)"
checkc "with data written: changed false, data intact" '[ "$(rc_of m3)" = 0 ] && [ "$(jv "$W/m3.json" changed)" = false ] && (cd /mnt/m && sha256sum -c --quiet "$KEEP/m.sha256")'
checkc "verify_pmd on memmap PMEM: 2 MiB faults (NOPAGE > 0), none fell back" '[ "$(jv "$W/m3.json" "pmd_faults./mnt/m.nopage")" -gt 0 ] && [ "$(jv "$W/m3.json" "pmd_faults./mnt/m.fallback")" = 0 ]'

section "what a label-less region cannot do is refused before anything runs"
before=$(ndctl list -N)
module small "{\"namespaces\":[{\"name\":\"m0\",\"region\":\"$M0\",\"mode\":\"fsdax\",\"size\":\"256M\"}]}"
checkc "a size smaller than the range: failed, says why and what to do" '[ "$(jv "$W/small.json" failed)" = true ] && jv "$W/small.json" msg | grep -q "is label-less (a legacy range such as the kernel.s memmap= option makes.*cannot be made 256M; drop size"'
module second "{\"namespaces\":[{\"name\":\"m0\",\"region\":\"$M0\",\"mode\":\"fsdax\"},{\"name\":\"mx\",\"region\":\"$M0\",\"mode\":\"fsdax\",\"size\":\"128M\"}]}"
checkc "a second namespace in one range: failed, naming the namespace there" '[ "$(jv "$W/second.json" failed)" = true ] && jv "$W/second.json" msg | grep -q "namespace mx: $M0 is label-less.*its namespace .* is m0; namespace mx cannot be made there"'
checkc "nothing changed by either" '[ "$(ndctl list -N)" = "$before" ] && [ -z "$(spawns small)$(spawns second)" ]'

section "DIMMs without labels: check mode, converge, again"
module lcheck "$(with_key "$ARGS_L" '{"_ansible_check_mode":true}')"
module l1 "$ARGS_L"
checkc "converge: rc 0, changed, as check mode planned" '[ "$(rc_of l1)" = 0 ] && [ "$(jv "$W/l1.json" changed)" = true ] && [ "$(actions "$W/l1.json")" = "$(actions "$W/lcheck.json")" ]'
checkc "/mnt/l mounted with dax=always" 'grep -q " /mnt/l .*dax=always" /proc/self/mountinfo'
dd if=/dev/urandom of=/mnt/l/data bs=1M count=32 status=none && sync
(cd /mnt/l && sha256sum data) > "$KEEP/l.sha256"
module l2 "$ARGS_L"
checkc "second run: changed false, no process started, data intact" '[ "$(rc_of l2)" = 0 ] && [ "$(jv "$W/l2.json" changed)" = false ] && [ -z "$(spawns l2)" ] && (cd /mnt/l && sha256sum -c --quiet "$KEEP/l.sha256")'
echo "l0=$(blk_of_region "$L0") l1=$(blk_of_region "$L1")" > "$KEEP/boot1.txt"
checkc "both stacks persisted: mount units written" '[ -e "$UNITS/mnt-m.mount" ] && [ -e "$UNITS/mnt-l.mount" ]'
summary
