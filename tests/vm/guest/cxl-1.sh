#!/bin/bash
# CXL persistent memory (runs INSIDE the guest; the rig's -X 2: two CXL type-3 memory
# devices with label areas, serials 0x1 and 0x2, each on a root port of one host bridge,
# no NVDIMM). What the probe reads of CXL, checked against cxl-cli's own view: the memory
# devices by serial, the root decoder, and a 2-way pmem region made by hand with
# `cxl create-region` (its members in interleave order, the NVDIMM region it shows as);
# then the stack on that NVDIMM region: an fsdax namespace, xfs, DAX, 2 MiB faults, and
# the DAX audit down to the CXL region.
source "$(dirname "$0")/lib.sh"
modprobe -a cxl_acpi cxl_pci cxl_mem cxl_pmem nd_pmem dax_pmem device_dax
udevadm settle
cxl_of() { python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["ansible_facts"]["pmem_stack"].get("cxl")))' "$W/$1.json"; }

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

section "a 2-way pmem region made by hand (serial 0x2 first), as the probe reads it"
# memN follows enumeration (seen: serial 0x2 as mem0 on one boot, mem1 on another)
M1=$(cxl list -M | python3 -c 'import json,sys; print([m["memdev"] for m in json.load(sys.stdin) if m["serial"] == 2][0])')
M0=$(cxl list -M | python3 -c 'import json,sys; print([m["memdev"] for m in json.load(sys.stdin) if m["serial"] == 1][0])')
echo "  serial 0x2 is $M1, serial 0x1 is $M0 at this boot"
cxl create-region -t pmem -m -d decoder0.0 -w 2 "$M1" "$M0" 2>&1 | sed 's/^/  /'
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

section "the stack on the CXL region's NVDIMM region: fsdax namespace, xfs, DAX, 2 MiB faults"
ARGS="{\"namespaces\":[{\"name\":\"cx0\",\"region\":\"$ND\",\"mode\":\"fsdax\"}],\"filesystems\":[{\"device\":\"cx0\",\"type\":\"xfs\"}],\"mounts\":[{\"path\":\"/mnt/cx\",\"device\":\"cx0\",\"dax\":\"always\"}],\"verify_pmd\":true}"
module c1 "$ARGS"
echo "  pmd_faults: $(jv "$W/c1.json" pmd_faults)"
checkc "converge: rc 0, mounted with DAX, 2 MiB faults mapped and none fell back" '[ "$(rc_of c1)" = 0 ] && findmnt -no OPTIONS /mnt/cx | grep -q dax && [ "$(jv "$W/c1.json" "pmd_faults./mnt/cx.nopage")" -gt 0 ] && [ "$(jv "$W/c1.json" "pmd_faults./mnt/cx.fallback")" = 0 ]'
python3 -c 'import json,sys; [print("   %-10s %-5s %s" % (l["layer"], "ok" if l["pmd_ok"] else "NO", l["found"])) for m in json.load(open(sys.argv[1]))["dax_audit"]["mounts"] for l in m["layers"]]' "$W/c1.json"
checkc "the DAX audit walks down to the CXL region $CR under the namespace: 2 ways over serials 0x2, 0x1, 2 MiB faults allowed" 'python3 - "$W/c1.json" "$CR" <<PY
import json, sys
layers = json.load(open(sys.argv[1]))["dax_audit"]["mounts"][0]["layers"]
ns = [l for l in layers if l["layer"] == "namespace"][0]
c = [l for l in layers if l["layer"] == "cxl_region"][0]
assert c["object"] == sys.argv[2] and c["depth"] == ns["depth"] + 1 and c["pmd_ok"], c
assert "2 way(s)" in c["found"] and "serial(s) 0x2, 0x1" in c["found"], c
PY'
module c2 "$ARGS"
checkc "again: unchanged, no process started" '[ "$(rc_of c2)" = 0 ] && [ "$(jv "$W/c2.json" changed)" = false ] && [ -z "$(spawns c2)" ]'
summary
