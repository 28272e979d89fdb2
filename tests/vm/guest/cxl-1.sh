#!/bin/bash
# CXL boots, boot 1 of 3 (runs INSIDE the guest, systemd as PID 1; the rig's -X 2: two
# CXL type-3 memory devices with label areas, serials 0x1 and 0x2, each on a root port
# of one host bridge, no NVDIMM).
# 1. What the probe reads of CXL, checked against cxl-cli's own view: the memory devices
#    by serial, the root decoder.
# 2. A 2-way region made by hand (serial 0x2 first), as the probe reads it; declared as
#    it is, it is the declared one (nothing done); declared absent, it is taken apart.
# 3. A region left half-made (size and targets set through sysfs, never committed: what
#    a stopped `cxl create-region` leaves) is taken apart and made again.
# 4. The persisted stack from nothing (playbooks/cxl-xfs.yml: the 2-way region by serial,
#    an fsdax namespace on it, dm-linear over that, xfs, DAX): ansible-playbook --check
#    --diff, check mode, converge (the plan check mode showed), 2 MiB faults, the audit
#    down to the CXL region, idempotent (no process started), and the CXL facts through
#    pmem_stack_info. Its data and checksum are kept for the next boots.
source "$(dirname "$0")/cxl-lib.sh"
modprobe -a cxl_acpi cxl_pci cxl_mem cxl_pmem nd_pmem dax_pmem device_dax
udevadm settle
ARGS_R='{"cxl_regions":[{"name":"cx0","memdevs":["0x2","0x1"]}]}'

section "what the probe reads of CXL, before any region"
cxl list -M -D -u | sed 's/^/  cxl list -M -D: /'
facts f0
echo "  facts: $(jv "$W/f0.json" msg)"
cxl_of f0 | sed 's/^/  facts cxl: /'
checkc "memory devices: serials 0x1 and 0x2, 512 MiB of pmem each, as cxl list -M says" 'python3 - "$W/f0.json" <<PY
import json, subprocess, sys
c = json.load(open(sys.argv[1]))["ansible_facts"]["pmem_stack"]["cxl"]
want = json.loads(subprocess.run(["cxl", "list", "-M"], capture_output=True, text=True).stdout)
mine = {m["name"]: (m["serial"], m["pmem_size"]) for m in c["memdevs"]}
theirs = {m["memdev"]: (m["serial"], m["pmem_size"]) for m in want}
assert mine == theirs and sorted(s for s, _ in mine.values()) == [1, 2] and {p for _, p in mine.values()} == {512 << 20}, (mine, theirs)
PY'
checkc "root decoder decoder0.0: 4 GiB, pmem-capable, not locked, all of it free, no region" 'python3 - "$W/f0.json" <<PY
import json, sys
c = json.load(open(sys.argv[1]))["ansible_facts"]["pmem_stack"]["cxl"]
d = [r for r in c["root_decoders"] if r["name"] == "decoder0.0"][0]
assert d["size"] == 4 << 30 and d["pmem_capable"] and not d["locked"] and d["free"] == d["size"], d
assert c.get("regions", []) == [], c
PY'

section "a 2-way pmem region made by hand (serial 0x2 first): read, declared as it is, declared absent"
# memN follows enumeration (seen: serial 0x2 as mem0 on one boot, mem1 on another)
M2=$(memdev_of 2); M1=$(memdev_of 1)
echo "  serial 0x2 is $M2, serial 0x1 is $M1 at this boot"
cxl create-region -t pmem -m -d decoder0.0 -w 2 "$M2" "$M1" 2>&1 | sed 's/^/  /'
udevadm settle
cxl list -R -u | sed 's/^/  cxl list -R: /'
ndctl list -R | sed 's/^/  ndctl list -R: /'
facts f1
cxl_of f1 | sed 's/^/  facts cxl: /'
ND=$(ndctl list -R | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d if isinstance(d,list) else [d]; print(d[0]["dev"])')
CR=$(cxl list -R | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d if isinstance(d,list) else [d]; print(d[0]["region"])')
checkc "the region: committed pmem, 1 GiB, 2 ways, members serial 0x2 then 0x1, its uuid, the NVDIMM region ndctl lists ($ND)" 'python3 - "$W/f1.json" "$CR" "$ND" "$(cat /sys/bus/cxl/devices/$CR/uuid)" <<PY
import json, sys
c = json.load(open(sys.argv[1]))["ansible_facts"]["pmem_stack"]["cxl"]
r = [r for r in c["regions"] if r["name"] == sys.argv[2]][0]
assert r["committed"] and r["mode"] == "pmem" and r["size"] == 1 << 30 and r["interleave_ways"] == 2, r
assert [m["serial"] for m in r["members"]] == [2, 1], r
assert r["uuid"] == sys.argv[4] and r["nvdimm_region"] == sys.argv[3] and r["root_decoder"] == "decoder0.0", r
assert not r["locked"]
d = [d for d in c["root_decoders"] if d["name"] == "decoder0.0"][0]
assert d["free"] == d["size"] - (1 << 30), d
PY'
module r1 "$ARGS_R"
checkc "declared as it is (cx0: serials 0x2, 0x1), it is the declared one: unchanged, no process started" '[ "$(rc_of r1)" = 0 ] && [ "$(jv "$W/r1.json" changed)" = false ] && [ -z "$(spawns r1)" ]'
module r2 "$(with "$ARGS_R" '"state":"absent"')"
checkc "declared absent, with nothing on it: cxl destroy-region $CR, not destructive; no region left" '[ "$(rc_of r2)" = 0 ] && [ "$(actions "$W/r2.json")" = destroy_cxl_region ] && [ "$(jv "$W/r2.json" plan[0].destructive)" = false ] && [ "$(spawns r2)" = /usr/bin/cxl ] && no_cxl_region'

section "a region left half-made (what a stopped cxl create-region leaves) is taken apart and made again"
# the steps of cxl create-region through sysfs, all but the commit: the region, its
# interleave and uuid, each member's endpoint decoder (mode, DPA size), the size, targets
endpoint_decoder() {
  local e
  for e in /sys/bus/cxl/devices/endpoint*; do
    [ "$(basename "$(readlink -f "$e/uport")")" = "$1" ] && { basename "$(ls -d "$e"/decoder*.0 | head -1)"; return; }
  done
}
D2=$(endpoint_decoder "$M2"); D1=$(endpoint_decoder "$M1")
RD=/sys/bus/cxl/devices/decoder0.0
HR=$(cat "$RD/create_pmem_region") && echo "$HR" > "$RD/create_pmem_region"
R=/sys/bus/cxl/devices/$HR
echo 256 > "$R/interleave_granularity"; echo 2 > "$R/interleave_ways"; cat /proc/sys/kernel/random/uuid > "$R/uuid"
for d in "$D2" "$D1"; do echo pmem > "/sys/bus/cxl/devices/$d/mode"; echo $((512 << 20)) > "/sys/bus/cxl/devices/$d/dpa_size"; done
echo $((1 << 30)) > "$R/size"; echo "$D2" > "$R/target0"; echo "$D1" > "$R/target1"
echo "  $HR: targets $(cat "$R/target0") $(cat "$R/target1"), commit $(cat "$R/commit" 2>/dev/null), $(cxl list -R -r "$HR" 2>/dev/null | tr -d '\n ')"
facts f2
cxl_regions f2 | sed 's/^/  facts: /'
module h1 "$ARGS_R"
checkc "made again: destroy_cxl_region (half-made, nothing lost), create_cxl_region; committed over 0x2, 0x1" '[ "$(rc_of h1)" = 0 ] && [ "$(actions "$W/h1.json")" = destroy_cxl_region,create_cxl_region ] && [ "$(jv "$W/h1.json" plan[0].destructive)" = false ] && jv "$W/h1.json" plan[0].detail | grep -q half-made && facts f3 && cxl_regions f3 | grep -q ":0x2+0x1:region[0-9]* committed"'
module h2 "$(with "$ARGS_R" '"state":"absent"')"
checkc "and taken apart again (rc 0, no region left)" '[ "$(rc_of h2)" = 0 ] && no_cxl_region'

section "the persisted stack from nothing: ansible-playbook --check --diff, check mode, converge"
play p_check --check --diff
grep -A5 'CXL region cx0 (before)' "$W/p_check.log" | sed 's/^/  | /'
checkc "ansible-playbook --check --diff: changed=1, the region in the diff, nothing made" '[ "$(cat "$W/p_check.rc")" = 0 ] && [ "$(recap p_check changed)" = 1 ] && grep -q "CXL region cx0" "$W/p_check.log" && no_cxl_region'
module s_check "$(with "$ARGS_X" '"_ansible_check_mode":true')"
module s1 "$(with "$ARGS_X" '"verify_pmd":true')"
echo "  pmd_faults: $(jv "$W/s1.json" pmd_faults)"
facts f4
cxl_regions f4 | sed 's/^/  facts: /'
ndctl list -N | tr -d '\n ' | sed 's/^/  ndctl list -N: /'; echo
checkc "converge: rc 0, the plan check mode showed (create_cxl_region, create_namespace, create_dm, mkfs, mount, set_extsize, boot files), the region over 0x2, 0x1" 'python3 - "$W/s_check.json" "$W/s1.json" <<PY
import json, sys
c, r = (json.load(open(p)) for p in sys.argv[1:3])
steps = lambda x: [(s["action"], s["target"]) for s in x["plan"]]
assert not r["failed"] and steps(c) == steps(r), (steps(c), steps(r))
a = [s for s, _ in steps(r)]
assert a[:6] == ["create_cxl_region", "create_namespace", "create_dm", "mkfs", "mount", "set_extsize"] and "write_file" in a, a
PY
assembled f4'
checkc "mounted with DAX; 2 MiB faults mapped, none fell back" 'findmnt -no OPTIONS /mnt/cx | grep -q dax && [ "$(jv "$W/s1.json" "pmd_faults./mnt/cx.nopage")" -gt 0 ] && [ "$(jv "$W/s1.json" "pmd_faults./mnt/cx.fallback")" = 0 ]'
python3 -c 'import json,sys; [print("   %-10s %-5s %s" % (l["layer"], "ok" if l["pmd_ok"] else "NO", l["found"])) for m in json.load(open(sys.argv[1]))["dax_audit"]["mounts"] for l in m["layers"]]' "$W/s1.json"
checkc "the DAX audit walks down to the CXL region under the namespace: 2 ways over serials 0x2, 0x1" 'python3 - "$W/s1.json" <<PY
import json, sys
layers = json.load(open(sys.argv[1]))["dax_audit"]["mounts"][0]["layers"]
ns = [l for l in layers if l["layer"] == "namespace"][0]
c = [l for l in layers if l["layer"] == "cxl_region"][0]
assert c["depth"] == ns["depth"] + 1 and c["pmd_ok"] and "2 way(s)" in c["found"] and "serial(s) 0x2, 0x1" in c["found"], c
PY'
module s2 "$ARGS_X"
checkc "again: unchanged, no process started" '[ "$(rc_of s2)" = 0 ] && [ "$(jv "$W/s2.json" changed)" = false ] && [ -z "$(spawns s2)" ]'
play p_again
sed -n '/The CXL regions/,/^$/p' "$W/p_again.log" | sed 's/^/  /'
checkc "ansible-playbook again: changed=0; pmem_stack_info gives the region over serials 2 then 1 and its NVDIMM region" '[ "$(cat "$W/p_again.rc")" = 0 ] && [ "$(recap p_again changed)" = 0 ] && grep -qE "memdevs=1,2 regions=region[0-9]+:2\+1:region[0-9]+ " "$W/p_again.log"'
checkc "persisted: the saved state and the mount unit" '[ -n "$(ls /etc/pmem-stack/state.d/*.json 2>/dev/null)" ] && [ -f "$UNITS/mnt-cx.mount" ]'
write_data /mnt/cx/data "$KEEP/cx.sha256"
cp "$W/s1.json" "$KEEP/s1.json"
summary
