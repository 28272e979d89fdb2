#!/bin/bash
# The README demo (runs INSIDE the guest): the striped recipe, shown step by step.
source "$(dirname "$0")/lib.sh"
ARGS=$(python3 - <<'PY'
import json
print(json.dumps({
  "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"},
                 {"name": "pm1", "region": "region1", "mode": "fsdax"}],
  "devices": [{"name": "pmem-striped", "target": "striped", "members": ["pm0", "pm1"], "chunk": "2M"}],
  "filesystems": [{"device": "pmem-striped", "type": "xfs", "label": "pmemfs"}],
  "mounts": [{"path": "/mnt/pmem", "device": "pmem-striped", "dax": "always"}],
  "verify_pmd": True,
}))
PY
)
show() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("  changed=%s failed=%s msg=%s" % (d["changed"], d["failed"], d["msg"])); [print("  %2d. %-22s %-28s %s%s" % (i+1, s["action"], s["target"], s["detail"], "  [destroys data]" if s["destructive"] else "")) for i, s in enumerate(d["plan"])]' "$1"; }
section "arguments"; echo "$ARGS" | python3 -m json.tool
section "1. check mode: the plan (nothing changes)"
module plan "${ARGS%\}},\"_ansible_check_mode\":true}"; show "$W/plan.json"
section "2. first run"
module run1 "$ARGS"; show "$W/run1.json"
check "first run changed" [ "$(jv "$W/run1.json" changed)" = true ]
section "3. second run"
module run2 "$ARGS"; show "$W/run2.json"
check "second run unchanged" [ "$(jv "$W/run2.json" changed)" = false ]
check "second run started no process" [ -z "$(spawns run2)" ]
section "4. DAX check"
echo "  dmsetup table: $(dmtable pmem-striped)"
grep ' /mnt/pmem ' /proc/self/mountinfo
check "mountinfo shows dax=always" grep -q ' /mnt/pmem .*dax=always' /proc/self/mountinfo
head -c 8M /dev/urandom > /mnt/pmem/file && sync
A=$(xfs_io -c 'statx -r' /mnt/pmem/file | sed -n 's/^stat.attributes = //p')
echo "  statx attributes of /mnt/pmem/file: $A (STATX_ATTR_DAX = 0x200000)"
checkc "a file on it has STATX_ATTR_DAX" '[ -n "$A" ] && [ $(( A & 0x200000 )) -ne 0 ]'
echo "  extsize on /mnt/pmem: $(xfs_io -c extsize /mnt/pmem)"
echo "  2 MiB (PMD) faults counted by the module (verify_pmd): $(jv "$W/run2.json" pmd_faults)"
checkc "the module counted 2 MiB faults, none fell back" '[ "$(jv "$W/run2.json" "pmd_faults./mnt/pmem.nopage")" -gt 0 ] && [ "$(jv "$W/run2.json" "pmd_faults./mnt/pmem.fallback")" = 0 ]'
echo "  dax_audit:"; python3 -c 'import json,sys; [print("   %-10s %-3s %s" % (l["layer"], "ok" if l["pmd_ok"] else "NO", l["found"])) for m in json.load(open(sys.argv[1]))["dax_audit"]["mounts"] for l in m["layers"]]' "$W/run2.json"
summary
