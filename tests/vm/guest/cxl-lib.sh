# Sourced by the CXL boots (cxl-1.sh, cxl-2.sh, cxl-3.sh): systemd is PID 1, the rig's
# -X gives the CXL memory devices (serials 0x1, 0x2), the guest's writes to its root and
# the memory devices' files are kept between the boots, the test's own notes go to $KEEP.
source "$(dirname "$0")/boot-lib.sh"
# the persisted stack (playbooks/cxl-striped-xfs.yml's): region cxa over serial 0x2, cxb
# over 0x1, namespaces pm0 and pm1 on them, dm-striped pmem-cx over both, xfs, DAX on /mnt/cx
ARGS_X='{"cxl_regions":[{"name":"cxa","memdevs":["0x2"]},{"name":"cxb","memdevs":["0x1"]}],
"namespaces":[{"name":"pm0","region":"cxa","mode":"fsdax"},{"name":"pm1","region":"cxb","mode":"fsdax"}],
"devices":[{"name":"pmem-cx","target":"striped","members":["pm0","pm1"]}],
"filesystems":[{"device":"pmem-cx","type":"xfs"}],
"mounts":[{"path":"/mnt/cx","device":"pmem-cx","dax":"always"}],"boot":{"persist":true}}'
# the CXL facts of a result file, one line
cxl_of() { python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["ansible_facts"]["pmem_stack"].get("cxl")))' "$W/$1.json"; }
# both persisted regions assembled and committed: serial 0x2 alone and 0x1 alone
both_regions() { cxl_regions "$1" | grep -q ":0x2:region[0-9]* committed" && cxl_regions "$1" | grep -q ":0x1:region[0-9]* committed"; }
# the regions of a facts file as "regionN:serial+serial:nvdimm_region committed", one per line
cxl_regions() { python3 -c 'import json,sys; [print("%s:%s:%s %s" % (r["name"], "+".join(hex(m["serial"]) for m in r["members"]), r.get("nvdimm_region"), "committed" if r["committed"] else "not-committed")) for r in json.load(open(sys.argv[1]))["ansible_facts"]["pmem_stack"]["cxl"].get("regions", [])]' "$W/$1.json"; }
# whether the kernel has no CXL region (`cxl list -R` prints a warning then)
no_cxl_region() { ! ls /sys/bus/cxl/devices/ | grep -q '^region'; }
# the memory device (memN) with serial $1 at this boot (memN follows enumeration)
memdev_of() { cxl list -M | python3 -c "import json,sys; print([m['memdev'] for m in json.load(sys.stdin) if m['serial'] == $1][0])"; }
# Ansible runs playbooks/cxl-striped-xfs.yml (play, recap)
PLAYBOOK=cxl-striped-xfs.yml
source "$HERE/play-lib.sh"
