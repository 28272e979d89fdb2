# Sourced by the CXL boots (cxl-1.sh, cxl-2.sh, cxl-3.sh): systemd is PID 1, the rig's
# -X gives the CXL memory devices (serials 0x1, 0x2), the guest's writes to its root and
# the memory devices' files are kept between the boots, the test's own notes go to $KEEP.
source "$(dirname "$0")/boot-lib.sh"
# the persisted stack (playbooks/cxl-xfs.yml's): region cx0 over serial 0x2 then 0x1,
# namespace pm0 on it, dm-linear pmem-cx over it, xfs, DAX on /mnt/cx
ARGS_X='{"cxl_regions":[{"name":"cx0","memdevs":["0x2","0x1"]}],
"namespaces":[{"name":"pm0","region":"cx0","mode":"fsdax"}],
"devices":[{"name":"pmem-cx","target":"linear","members":["pm0"]}],
"filesystems":[{"device":"pmem-cx","type":"xfs"}],
"mounts":[{"path":"/mnt/cx","device":"pmem-cx","dax":"always"}],"boot":{"persist":true}}'
# the CXL facts of a result file, one line
cxl_of() { python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["ansible_facts"]["pmem_stack"].get("cxl")))' "$W/$1.json"; }
# the persisted region assembled: serial 0x2 then 0x1, committed, showing as an NVDIMM region
assembled() { cxl_regions "$1" | grep -q ":0x2+0x1:region[0-9]* committed"; }
# the regions of a facts file as "regionN:serial+serial:nvdimm_region committed", one per line
cxl_regions() { python3 -c 'import json,sys; [print("%s:%s:%s %s" % (r["name"], "+".join(hex(m["serial"]) for m in r["members"]), r.get("nvdimm_region"), "committed" if r["committed"] else "not-committed")) for r in json.load(open(sys.argv[1]))["ansible_facts"]["pmem_stack"]["cxl"].get("regions", [])]' "$W/$1.json"; }
# whether the kernel has no CXL region (`cxl list -R` prints a warning then)
no_cxl_region() { ! ls /sys/bus/cxl/devices/ | grep -q '^region'; }
# the memory device (memN) with serial $1 at this boot (memN follows enumeration)
memdev_of() { cxl list -M | python3 -c "import json,sys; print([m['memdev'] for m in json.load(sys.stdin) if m['serial'] == $1][0])"; }
# Ansible runs playbooks/cxl-xfs.yml (play, recap)
PLAYBOOK=cxl-xfs.yml
source "$HERE/play-lib.sh"
