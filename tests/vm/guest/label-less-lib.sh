# Sourced by label-less-1.sh and label-less-2.sh (systemd is PID 1): PMEM without a label
# area, the two kinds in one guest. Two `memmap=512M!1G memmap=512M!1536M` ranges (PMEM
# emulated in RAM, as pmem.io's guide tells readers without NVDIMMs; the rig backs the
# guest's RAM with a file, so they survive the power-off as memmap PMEM survives a warm
# reboot) and two 512 MiB NVDIMMs without a label area (the rig's -L). Regions are found
# by kind and address, as a user reads them off `ndctl list -R`: the memmap ranges have
# no mappings, the DIMMs one each.
source "$(dirname "$0")/lib.sh"
: "${KEEP:?}"
UNITS=/etc/systemd/system
NAMES=/var/lib/pmem-stack/names
prop() { systemctl show -p "$2" --value "$1"; }
# regions of one kind (mappings 0: memmap; 1: DIMMs), by physical address
regions_with() {
  for r in /sys/bus/nd/devices/region*; do
    [ "$(cat "$r/mappings")" = "$1" ] && echo "$(cat "$r/resource") $(basename "$r")"
  done | sort | awk '{print $2}'
}
# the region at physical address $1 now
region_at() { for r in /sys/bus/nd/devices/region*; do [ "$(cat "$r/resource")" = "$1" ] && basename "$r"; done; }
# mode and block device of the namespace of region $1 (label-less: one each)
ns_of_region() { basename "$(ls -d /sys/bus/nd/devices/"$1"/namespace*.0 2>/dev/null | head -1)"; }
blk_of_region() { ndctl list -N -r "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); d=d if isinstance(d,list) else [d]; print(d[0].get('blockdev','') if d else '')"; }
mode_of_region() { ndctl list -N -r "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); d=d if isinstance(d,list) else [d]; print(('%s/%s/%s' % (d[0].get('mode',''), d[0].get('map',''), d[0].get('align',''))) if d else '')"; }
# every mount namespace's mountinfo line for a mount point (none when gone everywhere)
mounted_anywhere() { cat /proc/[0-9]*/mountinfo 2>/dev/null | awk -v p="$1" '$5 == p' | head -1; }
stacks() {
  M0=$(cat "$KEEP/m0"); M1=$(cat "$KEEP/m1"); L0=$(cat "$KEEP/l0"); L1=$(cat "$KEEP/l1")
  # striped xfs over the two memmap ranges (about 2 x 504 MiB usable: xfs with a 2 MiB
  # stripe unit needs more than 512 MiB), verify_pmd on
  ARGS_M="{\"namespaces\":[{\"name\":\"m0\",\"region\":\"$M0\",\"mode\":\"fsdax\"},{\"name\":\"m1\",\"region\":\"$M1\",\"mode\":\"fsdax\"}],
\"devices\":[{\"name\":\"mm-striped\",\"target\":\"striped\",\"members\":[\"m0\",\"m1\"]}],
\"filesystems\":[{\"device\":\"mm-striped\",\"type\":\"xfs\"}],
\"mounts\":[{\"path\":\"/mnt/m\",\"device\":\"mm-striped\",\"dax\":\"always\"}],\"boot\":{\"persist\":true}}"
  # linear ext4 over the two DIMMs without labels
  ARGS_L="{\"namespaces\":[{\"name\":\"l0\",\"region\":\"$L0\",\"mode\":\"fsdax\"},{\"name\":\"l1\",\"region\":\"$L1\",\"mode\":\"fsdax\"}],
\"devices\":[{\"name\":\"ll-linear\",\"target\":\"linear\",\"members\":[\"l0\",\"l1\"]}],
\"filesystems\":[{\"device\":\"ll-linear\",\"type\":\"ext4\"}],
\"mounts\":[{\"path\":\"/mnt/l\",\"device\":\"ll-linear\",\"dax\":\"always\"}],\"boot\":{\"persist\":true}}"
}
with_key() { python3 -c 'import json,sys; a=json.loads(sys.argv[1]); a.update(json.loads(sys.argv[2])); print(json.dumps(a))' "$1" "$2"; }
check "systemd is PID 1" [ "$(cat /proc/1/comm)" = systemd ]
echo "  kernel $(uname -r)"
