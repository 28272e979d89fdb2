#!/bin/bash
# The benchmark in the guest (scripts/bench.sh boots it): load the drivers, then
# bench.py MODE OUT.json (MODE main, scale or foreign).
for m in nfit nd_pmem dax_pmem dm-mod dm-linear dm-striped ext4 xfs loop; do modprobe -q "$m" 2>/dev/null || true; done
udevadm settle 2>/dev/null || true
exec python3 "$(dirname "$0")/bench.py" "$@"
