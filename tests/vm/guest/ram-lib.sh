# Sourced by the system-RAM boots (ram-1.sh, ram-2.sh): systemd is PID 1, one NVDIMM in
# NUMA node 1 (the rig's -M: node 0 has the CPUs and RAM), the guest's writes to its root
# kept between the boots, the test's own notes in $KEEP.
source "$(dirname "$0")/boot-lib.sh"
# the persisted stack: devdax namespace ram0 given to the kernel as movable memory
ARGS_R='{"namespaces":[{"name":"ram0","region":"region0","mode":"devdax","system_ram":{}}],"boot":{"persist":true}}'
DEVDAX='{"namespaces":[{"name":"ram0","region":"region0","mode":"devdax"}]}'
# daxctl's own view of dax0.0, one line: mode online/total movable
dax_state() { daxctl list -d dax0.0 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d["mode"], "%s/%s" % (d.get("online_memblocks"), d.get("total_memblocks")), "movable" if d.get("movable") else "not-movable")'; }
node1() { awk -v k="$1:" '$3 == k {print $4}' /sys/devices/system/node/node1/meminfo; }
policy() { cat /sys/devices/system/memory/auto_online_blocks; }
# hold N MiB on node 1 (set_mempolicy MPOL_BIND) in the background, touched; pid in $HOLDER
hold_on_node1() {
  python3 - "$1" <<'PY' > "$W/holder.log" 2>&1 &
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
mask = ctypes.c_ulong(1 << 1)
assert libc.syscall(238, 2, ctypes.byref(mask), 64) == 0, ctypes.get_errno()  # set_mempolicy(MPOL_BIND, {1})
b = bytearray(int(sys.argv[1]) << 20)
for i in range(0, len(b), 4096):
    b[i] = 1
print("holding", flush=True)
time.sleep(600)
PY
  HOLDER=$!
  for _ in $(seq 60); do grep -q holding "$W/holder.log" && return 0; sleep 0.5; done
  return 1
}
