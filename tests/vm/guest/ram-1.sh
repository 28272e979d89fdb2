#!/bin/bash
# System-RAM boots, boot 1 of 2 (runs INSIDE the guest, systemd as PID 1; one NVDIMM in
# NUMA node 1). A devdax namespace given to the kernel as memory, declared:
# 1. check mode, converge (the plan check mode showed), daxctl's view and the result's
#    (blocks online, zone, node, what the block rounding cost), the auto-online policy as
#    it was, idempotent (no process started), the facts;
# 2. used: memory a process holds on node 1; taken back (undeclared) it is migrated away;
# 3. not movable (ZONE_NORMAL) with a process's page tables on it: taking it back fails,
#    EBUSY named, every block online again; freed, it goes;
# 4. the persisted declaration converged again for boot 2.
source "$(dirname "$0")/ram-lib.sh"
modprobe -a nd_pmem dax_pmem device_dax kmem
ndctl disable-region all >/dev/null && ndctl init-labels -f all >/dev/null && ndctl enable-region all >/dev/null
POLICY=$(policy); echo "$POLICY" > "$KEEP/policy"
echo "  auto_online_blocks: $POLICY; block size 0x$(cat /sys/devices/system/memory/block_size_bytes); nodes with memory: $(cat /sys/devices/system/node/has_memory)"

section "a devdax namespace as system RAM, from nothing"
module r_check "$(with "$ARGS_R" '"_ansible_check_mode":true')"
checkc "check mode: create_namespace, to_system_ram, the boot files; nothing made" '[ "$(rc_of r_check)" = 0 ] && actions "$W/r_check.json" | grep -q "^create_namespace,to_system_ram,write_file" && [ -z "$(ndctl list -N)" ]'
module r1 "$ARGS_R"
daxctl list | tr -d '\n ' | sed 's/^/  daxctl list: /'; echo
echo "  system_ram: $(jv "$W/r1.json" system_ram)"
echo "  node 1: MemTotal $(node1 MemTotal) kB"
checkc "converge: rc 0, the plan check mode showed" 'python3 - "$W/r_check.json" "$W/r1.json" <<PY
import json, sys
c, r = (json.load(open(p)) for p in sys.argv[1:3])
steps = lambda x: [(s["action"], s["target"]) for s in x["plan"]]
assert not r["failed"] and steps(c) == steps(r), (steps(c), steps(r))
PY'
checkc "daxctl: system-ram, every block online, movable; the result agrees (zone Movable, node 1, blocks x block size online, the rest lost to rounding)" '[ "$(dax_state)" = "system-ram $(jv "$W/r1.json" system_ram.ram0.blocks)/$(jv "$W/r1.json" system_ram.ram0.blocks) movable" ] && python3 - "$W/r1.json" <<PY
import json, sys
r = json.load(open(sys.argv[1]))["system_ram"]["ram0"]
size = int(open("/sys/bus/dax/devices/dax0.0/size").read())
assert r["dax"] == "dax0.0" and r["mode"] == "system-ram" and r["zones"] == ["Movable"] and r["nodes"] == [1], r
assert r["blocks"] > 0 and r["online_bytes"] == r["blocks"] * r["block_size"] and r["lost_to_rounding"] == size - r["online_bytes"], (r, size)
PY'
checkc "node 1 has that memory (MemTotal = online_bytes)" '[ $(( $(node1 MemTotal) * 1024 )) = "$(jv "$W/r1.json" system_ram.ram0.online_bytes)" ]'
checkc "the auto-online policy is as it was ($POLICY)" '[ "$(policy)" = "$POLICY" ] && [ ! -e /var/lib/pmem-stack/auto_online_blocks.saved ]'
module r2 "$ARGS_R"
checkc "again: unchanged, no process started" '[ "$(rc_of r2)" = 0 ] && [ "$(jv "$W/r2.json" changed)" = false ] && [ -z "$(spawns r2)" ]'
facts f1
echo "  facts: $(jv "$W/f1.json" msg)"
checkc "--facts: dax0.0 in system-ram mode, its blocks online on node 1" 'jv "$W/f1.json" msg | grep -q "1 dax device(s) as system RAM" && python3 -c "import json,sys; m=json.load(open(sys.argv[1]))[\"ansible_facts\"][\"pmem_stack\"][\"memory\"]; d=[d for d in m[\"dax\"] if d[\"name\"]==\"dax0.0\"][0]; assert d[\"mode\"]==\"system-ram\" and all(b[\"online\"] and b[\"node\"]==1 for b in d[\"blocks\"]), d" "$W/f1.json"'

section "used, then taken back: what a process holds there is migrated away"
check "a process holds 300 MiB on node 1" hold_on_node1 300
echo "  node 1: MemUsed $(node1 MemUsed) kB"
checkc "node 1 serves it (MemUsed >= 250 MiB)" '[ "$(node1 MemUsed)" -ge $((250 * 1024)) ]'
module b1 "$DEVDAX"
checkc "undeclared: to_devdax (offline first), not destructive; devdax again; the process still runs" '[ "$(rc_of b1)" = 0 ] && [ "$(actions "$W/b1.json")" = to_devdax ] && [ "$(jv "$W/b1.json" "plan[0].destructive")" = false ] && [ "$(dax_state)" = "devdax None/None not-movable" ] && kill -0 $HOLDER'
kill $HOLDER; wait $HOLDER 2>/dev/null

section "not movable, with page tables on it: taking it back fails (EBUSY), nothing half-done"
module n1 '{"namespaces":[{"name":"ram0","region":"region0","mode":"devdax","system_ram":{"movable":false}}]}'
checkc "given as ZONE_NORMAL memory (daxctl: not movable; the result: zone Normal)" '[ "$(rc_of n1)" = 0 ] && [ "$(dax_state | cut -d" " -f3)" = not-movable ] && [ "$(jv "$W/n1.json" "system_ram.ram0.zones[0]")" = Normal ]'
# many small mappings: their page tables (kernel memory, unmovable) come from node 1 too
hold_on_node1 600 >/dev/null
module n2 "$DEVDAX"
echo "  after the failed offline: $(dax_state)"
checkc "to_devdax fails naming EBUSY; every block online again, still system-ram" '[ "$(rc_of n2)" != 0 ] && jv "$W/n2.json" msg | grep -qiE "ebusy|busy" && s=$(dax_state) && [ "${s%% *}" = system-ram ] && b=${s#* } && b=${b%% *} && [ "${b%/*}" = "${b#*/}" ]'
kill $HOLDER; wait $HOLDER 2>/dev/null
module n3 "$DEVDAX"
checkc "freed, it goes (rc 0, devdax)" '[ "$(rc_of n3)" = 0 ] && [ "$(dax_state | cut -d" " -f1)" = devdax ]'

section "the persisted declaration, for boot 2"
module r3 "$ARGS_R"
checkc "converged: system-ram, movable, the saved state and the replay unit" '[ "$(rc_of r3)" = 0 ] && [ "$(dax_state | cut -d" " -f1,3)" = "system-ram movable" ] && [ -n "$(ls /etc/pmem-stack/state.d/*.json 2>/dev/null)" ]'
summary
