#!/bin/bash
source "$(dirname "$0")/lib.sh"
modprobe -a nd_pmem dax_pmem device_dax kmem
ndctl disable-region all >/dev/null; ndctl init-labels -f all >/dev/null; ndctl enable-region all >/dev/null
echo "auto_online_blocks: $(cat /sys/devices/system/memory/auto_online_blocks) block_size $(cat /sys/devices/system/memory/block_size_bytes)"
echo "nodes online: $(cat /sys/devices/system/node/online) has_memory: $(cat /sys/devices/system/node/has_memory)"
ndctl list -R
ndctl create-namespace -r region0 -m devdax -a 2M -n ram0
daxctl list
D=/sys/bus/dax/devices/dax0.0
ls -la $D/ ; for f in target_node numa_node size resource align mode; do echo "$f: $(cat $D/$f 2>&1)"; done
ls $D/mapping0 2>/dev/null && cat $D/mapping0/start $D/mapping0/end
readlink $D/driver
echo offline > /sys/devices/system/memory/auto_online_blocks
time daxctl reconfigure-device --mode=system-ram dax0.0
echo online > /sys/devices/system/memory/auto_online_blocks
daxctl list
readlink $D/driver
ls /sys/bus/dax/drivers/kmem/
for b in /sys/devices/system/memory/memory*; do echo "$(basename $b) $(cat $b/state) $(cat $b/phys_index) $(ls -d $b/node* 2>/dev/null | xargs -n1 basename) $(cat $b/valid_zones 2>&1) removable=$(cat $b/removable 2>&1)"; done | tail -12
grep -E 'MemTotal' /sys/devices/system/node/node1/meminfo
ls /sys/devices/system/node/node1/ | head -30
echo "== use"
numactl --version 2>&1 | head -1
python3 -c 'import ctypes; print("ok")'
echo "== back"
daxctl offline-memory dax0.0; echo "rc $?"
daxctl reconfigure-device --mode=devdax dax0.0; echo "rc $?"
daxctl list
readlink $D/driver
