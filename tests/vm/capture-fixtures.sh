#!/bin/bash
# tests/vm/capture-fixtures.sh - runs INSIDE the test VM (tests/vm/run-guest.sh) and
# captures real-kernel output (sysfs attributes, ndctl/dmsetup/sgdisk/xfs tools, on-disk
# superblocks, mountinfo) as fixtures for the project's pure parsers.
#
# Usage (from the repo root, on the host):
#   mkdir -p tests/fixtures/vm
#   bash tests/vm/run-guest.sh -n 2 -s 256 -m 512M -t 600 -w tests/fixtures/vm \
#        -- bash tests/vm/capture-fixtures.sh "$PWD/tests/fixtures/vm"
#
# $1 = output dir (shared read-write into the guest). Its previous content is DELETED.
# Needs 2 NVDIMMs with label areas, both starting label-less (fresh backing files).
# Destructive to the guest's pmem devices only. Every command is logged (capture.log);
# a failing step is reported ("FAILED rc=N (continuing)") and the capture goes on.
# Writes MANIFEST.tsv (file <TAB> command) and README.md (generated) into $1.
set -u
OUT=${1:?usage: capture-fixtures.sh OUTDIR}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || { echo "bad output dir $1"; exit 2; }
case "$OUT" in /|/usr|/etc|/work|/root) echo "refusing to wipe $OUT"; exit 2;; esac
find "$OUT" -mindepth 1 -delete
LOG=$OUT/capture.log; MAN=$OUT/MANIFEST.tsv; NOTES=$OUT/.notes
: > "$LOG"; : > "$MAN"; : > "$NOTES"
NFAIL=0

say()  { echo "$*" | tee -a "$LOG"; }
note() { say "NOTE: $*"; echo "- $*" >> "$NOTES"; }
failed() { NFAIL=$((NFAIL+1)); say "  -> FAILED rc=$1 (continuing)"; }
# run CMD...: log it, output to the log
run() { say "+ $*"; "$@" 2>&1 | tee -a "$LOG"; local rc=${PIPESTATUS[0]}; [ "$rc" -ne 0 ] && failed "$rc"; return "$rc"; }
# cap FILE CMD...: stdout -> $OUT/FILE (stderr -> log), recorded in the manifest
cap() {
  local f=$1; shift; mkdir -p "$(dirname "$OUT/$f")"
  say "+ $* > $f"; "$@" > "$OUT/$f" 2>> "$LOG"; local rc=$?
  [ "$rc" -ne 0 ] && failed "$rc"
  printf '%s\t%s\n' "$f" "$*" >> "$MAN"; return "$rc"
}
capsh() { local f=$1; shift; cap "$f" bash -c "$1"; }   # cap FILE 'shell string'
# mkxfs ARGS... DEV: xfsprogs >= 5.19 refuses filesystems < 300 MB and logs < 64 MB, which
# 256 MiB DIMMs (and a ~500 MB stripe over two) cannot meet; the only way around it is
# the fstests override (TEST_DIR+TEST_DEV+QA_CHECK_FS set), used here only after a refusal.
mkxfs() {
  local dev=${!#}
  run mkfs.xfs "$@" && return 0
  note "\`mkfs.xfs $*\` was refused; re-ran it with TEST_DIR=/tmp TEST_DEV=$dev QA_CHECK_FS=1 (the fstests small-fs override)"
  NFAIL=$((NFAIL-1))
  TEST_DIR=/tmp TEST_DEV=$dev QA_CHECK_FS=1 run mkfs.xfs "$@"
}
settle() { udevadm settle -t 30 2>/dev/null || sleep 1; }
# first "KEY":"value" or "KEY":number of a JSON file (ndctl prints one key per line)
jget() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$2" | head -1; }

# copy_attrs SNAPDIR SYSDIR ATTR...: copy readable attribute files, keeping layout
# SNAPDIR/<SYSDIR without /sys>/ATTR; note absent/unreadable ones in the manifest.
copy_attrs() {
  local snap=$1 dir=$2; shift 2
  local rel=${dir#/sys/} got="" absent="" unread="" a
  mkdir -p "$OUT/$snap/$rel"
  for a in "$@"; do
    if [ ! -e "$dir/$a" ]; then absent="$absent $a"; continue; fi
    mkdir -p "$(dirname "$OUT/$snap/$rel/$a")"
    if cat "$dir/$a" > "$OUT/$snap/$rel/$a" 2>/dev/null; then got="$got $a"
    else rm -f "$OUT/$snap/$rel/$a"; unread="$unread $a"; fi
  done
  printf '%s\t%s\n' "$snap/$rel/" "cat $dir/ATTR; copied:${got:- none}${absent:+; absent:$absent}${unread:+; read error:$unread}" >> "$MAN"
  say "  $dir: copied:${got:- none}${absent:+ | absent:$absent}${unread:+ | read error:$unread}"
}
NS_ATTRS="mode size uuid alt_name holder holder_class resource sector_size nstype numa_node target_node devtype force_raw dpa_extents uevent"
REG_ATTRS="size available_size max_available_extent align numa_node target_node mappings mapping0 nstype devtype interleave_ways dax_seed pfn_seed btt_seed namespace_seed init_namespaces resource persistence_domain read_only uevent"
PFN_ATTRS="mode align namespace size resource uuid supported_alignments uevent"
BLK_ATTRS="dev size ro queue/dax queue/logical_block_size queue/physical_block_size queue/minimum_io_size queue/optimal_io_size uevent"

# snap_nd SNAP [pfn|dax]: namespaces + regions (+ pfn/dax devices) under /sys/bus/nd/devices
snap_nd() {
  local snap=$1 d; shift
  say "== sysfs snapshot $snap"
  for d in /sys/bus/nd/devices/region* /sys/bus/nd/devices/namespace*; do
    [ -e "$d" ] || continue
    case ${d##*/} in region*) copy_attrs "$snap" "$d" $REG_ATTRS;; *) copy_attrs "$snap" "$d" $NS_ATTRS;; esac
  done
  for kind in "$@"; do
    for d in /sys/bus/nd/devices/$kind*; do [ -e "$d" ] && copy_attrs "$snap" "$d" $PFN_ATTRS; done
  done
  capsh "$snap/ls-l.txt" 'for d in /sys/bus/nd/devices/*; do echo "$d -> $(readlink $d)"; ls -l $d/; echo; done'
}
# snap_block SNAP NAME [extra attrs]: /sys/block/NAME attributes + holders/slaves listings
snap_block() {
  local snap=$1 b=$2; shift 2
  copy_attrs "$snap" "/sys/block/$b" $BLK_ATTRS "$@"
  cap "$snap/block/$b/holders.ls" ls -l "/sys/block/$b/holders/"
  [ -d "/sys/block/$b/slaves" ] && cap "$snap/block/$b/slaves.ls" ls -l "/sys/block/$b/slaves/"
  return 0
}
T0=$(date +%s)
say "=== capture-fixtures: kernel $(uname -r), $(date -u +%FT%TZ), out $OUT"
for m in nfit nd_pmem dax_pmem device_dax dm_mod ext4 xfs; do run modprobe $m; done
settle

# ---------------------------------------------------------------------------------------
say "=== 1. fresh state (label-less raw namespaces)"
cap ndctl-list-fresh.json ndctl list -N -R
snap_nd sysfs-fresh pfn dax btt
for b in /sys/block/pmem*; do [ -e "$b" ] && snap_block sysfs-fresh "${b##*/}"; done

# ---------------------------------------------------------------------------------------
say "=== 2. namespaces -> fsdax (--map=dev, named)"
PM0_NS=""; PM1_NS=""
for pair in namespace0.0:pm0 namespace1.0:pm1; do
  ns=${pair%%:*}; name=${pair##*:}
  cap "create-namespace-$name.json" ndctl create-namespace -f -e "$ns" --mode=fsdax --map=dev --name="$name"
  settle
done
PM0_NS=$(jget dev "$OUT/create-namespace-pm0.json"); PM1_NS=$(jget dev "$OUT/create-namespace-pm1.json")
PM0_BLK=$(jget blockdev "$OUT/create-namespace-pm0.json"); PM1_BLK=$(jget blockdev "$OUT/create-namespace-pm1.json")
say "pm0 = $PM0_NS ($PM0_BLK), pm1 = $PM1_NS ($PM1_BLK)"
cap ndctl-list-fsdax.json ndctl list -N -R
snap_nd sysfs-fsdax pfn dax btt
for b in /sys/block/pmem*; do [ -e "$b" ] && snap_block sysfs-fsdax "${b##*/}"; done
capsh disk-by-id-fsdax.txt 'ls -l /dev/disk/by-id/'
capsh iomem-persistent.txt 'grep -i persistent /proc/iomem'
capsh dev-pmem-fsdax.txt 'ls -l /dev/pmem* /dev/dax* 2>/dev/null; true'

# ---------------------------------------------------------------------------------------
say "=== 3. $PM1_NS -> devdax (name pmd), then back to fsdax pm1"
cap create-namespace-devdax.json ndctl create-namespace -f -e "${PM1_NS:-namespace1.0}" --mode=devdax --name=pmd
settle
DAX_NS=$(jget dev "$OUT/create-namespace-devdax.json")
cap ndctl-list-devdax.json ndctl list -N -R
snap_nd sysfs-devdax pfn dax
for d in /sys/bus/dax/devices/*; do
  [ -e "$d" ] && copy_attrs sysfs-devdax "$d" size align target_node numa_node resource modalias uevent mapping0/start mapping0/end mapping0/page_offset
done
capsh sysfs-devdax/bus-dax-ls-l.txt 'for d in /sys/bus/dax/devices/*; do echo "$d -> $(readlink $d)"; ls -l $d/; echo; done'
capsh dev-dax-devdax.txt 'ls -l /dev/dax* /dev/pmem* 2>/dev/null; true'
cap create-namespace-pm1-again.json ndctl create-namespace -f -e "${DAX_NS:-${PM1_NS:-namespace1.0}}" --mode=fsdax --map=dev --name=pm1
settle
PM1_NS=$(jget dev "$OUT/create-namespace-pm1-again.json"); PM1_BLK=$(jget blockdev "$OUT/create-namespace-pm1-again.json")
cap ndctl-list-final.json ndctl list -N -R

# ---------------------------------------------------------------------------------------
say "=== 4. device-mapper: striped (chunk 4096 sectors) + linear over pmem0, pmem1"
S0=$(blockdev --getsz /dev/pmem0); S1=$(blockdev --getsz /dev/pmem1)
CH=4096; MIN=$(( S0 < S1 ? S0 : S1 )); TOT=$(( 2 * (MIN / CH) * CH ))
say "pmem0 sectors=$S0 pmem1 sectors=$S1 striped length=$TOT"
echo "pmem0_sectors=$S0 pmem1_sectors=$S1 striped_sectors=$TOT chunk_sectors=$CH" > "$OUT/dm-geometry.txt"
printf '%s\t%s\n' dm-geometry.txt "blockdev --getsz /dev/pmem0 /dev/pmem1; striped length = 2*floor(min/4096)*4096" >> "$MAN"
run dmsetup create pmstripe --uuid PMEMSTACK-TEST-pmstripe --table "0 $TOT striped 2 $CH /dev/pmem0 0 /dev/pmem1 0"
run dmsetup create pmlinear --table "0 $S0 linear /dev/pmem0 0
$S0 $S1 linear /dev/pmem1 0"
settle
cap dmsetup-table.txt dmsetup table
cap dmsetup-table-showkeys.txt dmsetup table --showkeys
cap dmsetup-info-c.txt dmsetup info -c
cap dmsetup-ls.txt dmsetup ls
cap dmsetup-ls-tree.txt dmsetup ls --tree
cap dmsetup-deps.txt dmsetup deps
capsh dev-mapper-ls.txt 'ls -l /dev/mapper/'
for m in pmstripe pmlinear; do
  d=$(readlink -f /dev/mapper/$m); d=${d##*/}
  [ -n "$d" ] && [ -e "/sys/block/$d" ] && snap_block sysfs-dm "$d" dm/name dm/uuid dm/suspended
done
for b in pmem0 pmem1; do snap_block sysfs-dm "$b"; done

# ---------------------------------------------------------------------------------------
say "=== 6. filesystems on the striped dm device"
STR=/dev/mapper/pmstripe
run mkfs.ext4 -q -F -b 4096 -E stride=512,stripe_width=1024 -L extlbl $STR
cap ext4-sb-striped.bin dd if=$STR bs=4096 count=1 status=none
cap dumpe2fs-h-striped.txt dumpe2fs -h $STR
mkxfs -f -q -m reflink=0 -d su=2m,sw=2 -L xfslbl $STR
cap xfs-sb-striped.bin dd if=$STR bs=4096 count=1 status=none
cap xfs-db-sb-striped.txt xfs_db -r -c 'sb 0' -c 'p' $STR

say "=== 7a. mount the striped xfs with dax=always at /mnt/x"
mkdir -p /mnt/x /mnt/e /mnt/n
dmesg -C
run mount -o dax=always $STR /mnt/x
echo hello > /mnt/x/file; sync
cap statx-xfs-striped.txt xfs_io -c 'statx -r' /mnt/x/file
cap extsize-before.txt xfs_io -c extsize /mnt/x
run xfs_io -c 'extsize 2m' /mnt/x
cap extsize-after.txt xfs_io -c extsize /mnt/x
echo hello > /mnt/x/newfile; sync
cap extsize-newfile.txt xfs_io -c extsize /mnt/x/newfile
capsh mountinfo-dax-striped.txt 'cat /proc/self/mountinfo'
capsh mounts-dax-striped.txt 'cat /proc/mounts'
capsh dmesg-mount-striped.txt 'dmesg | grep -i -E "xfs|dax|ext4"; true'
run umount /mnt/x
run dmsetup remove pmstripe
run dmsetup remove pmlinear
settle

# ---------------------------------------------------------------------------------------
say "=== 5. GPT on /dev/pmem0 (partition 1 at sector 4096, 2 MiB aligned end)"
run sgdisk -Z /dev/pmem0
END=$(( (S0 - 34) / 4096 * 4096 - 1 ))
cap sgdisk-create.txt sgdisk -a 4096 -n 1:4096:$END -t 1:8300 -c 1:pmemdata /dev/pmem0
settle; sleep 1; settle
cap gpt-pmem0-head.bin dd if=/dev/pmem0 bs=512 count=34 status=none
cap gpt-pmem0-tail.bin dd if=/dev/pmem0 bs=512 skip=$(( S0 - 33 )) count=33 status=none
cap sgdisk-p-pmem0.txt sgdisk -p /dev/pmem0
cap sgdisk-i1-pmem0.txt sgdisk -i 1 /dev/pmem0
copy_attrs sysfs-gpt /sys/block/pmem0/pmem0p1 start size partition dev ro alignment_offset uevent
snap_block sysfs-gpt pmem0
capsh proc-partitions.txt 'cat /proc/partitions'
capsh disk-links-gpt.txt 'for d in /dev/disk/by-*; do echo "== $d"; ls -l $d/; done'

# ---------------------------------------------------------------------------------------
say "=== 6b. default mkfs.xfs (reflink=1, no stripe unit) on /dev/pmem1"
mkxfs -f -q /dev/pmem1
cap xfs-sb-default.bin dd if=/dev/pmem1 bs=4096 count=1 status=none
cap xfs-db-sb-default.txt xfs_db -r -c 'sb 0' -c 'p' /dev/pmem1

say "=== 7b. ext4 on pmem0p1 (dax) at /mnt/e, default xfs on pmem1 (dax=always) at /mnt/x"
run mkfs.ext4 -q -F -b 4096 -E stride=512 /dev/pmem0p1
cap dumpe2fs-h-pmem0p1.txt dumpe2fs -h /dev/pmem0p1
dmesg -C
run mount -o dax /dev/pmem0p1 /mnt/e
run mount -o dax=always /dev/pmem1 /mnt/x
echo hello > /mnt/e/file; echo hello > /mnt/x/file; sync
cap statx-ext4-pmem0p1.txt xfs_io -c 'statx -r' /mnt/e/file
cap statx-xfs-pmem1.txt xfs_io -c 'statx -r' /mnt/x/file
capsh mountinfo-dax.txt 'cat /proc/self/mountinfo'
capsh mounts-dax.txt 'cat /proc/mounts'
capsh dmesg-mount-dax.txt 'dmesg | grep -i -E "xfs|dax|ext4"; true'
run umount /mnt/e
dmesg -C
run mount -o dax=never /dev/pmem0p1 /mnt/n
echo hello > /mnt/n/file2; sync
cap statx-ext4-nodax.txt xfs_io -c 'statx -r' /mnt/n/file2
capsh mountinfo-nodax.txt 'cat /proc/self/mountinfo'
capsh dmesg-mount-nodax.txt 'dmesg | grep -i -E "xfs|dax|ext4"; true'
run umount /mnt/n
run umount /mnt/x

# ---------------------------------------------------------------------------------------
say "=== 8. CPU / memory facts"
capsh cpuinfo-flags.txt 'grep -m1 "^flags" /proc/cpuinfo'
cap page-size.txt getconf PAGE_SIZE
cap thp-enabled.txt cat /sys/kernel/mm/transparent_hugepage/enabled
cap uname-r.txt uname -r

# ---------------------------------------------------------------------------------------
say "=== README"
f() { cat "$OUT/$1" 2>/dev/null | head -c 300; }   # fixture value for the key facts
fs=sysfs-fsdax/bus/nd/devices
PFN=$(f "$fs/$PM0_NS/holder")
{
  echo "# Real-kernel fixtures (generated)"
  echo
  echo "Captured inside the project's VM rig by \`tests/vm/capture-fixtures.sh\` (do not edit by"
  echo "hand; re-run to regenerate; this file is generated too):"
  echo
  echo '```'
  echo 'bash tests/vm/run-guest.sh -n 2 -s 256 -m 512M -t 600 -w tests/fixtures/vm \'
  echo '     -- bash tests/vm/capture-fixtures.sh "$PWD/tests/fixtures/vm"'
  echo '```'
  echo
  echo "- Guest kernel: \`$(uname -r)\` ($(uname -v)); ndctl $(ndctl --version), $(dmsetup --version | tr '\n' ' '), $(mkfs.xfs -V), e2fsprogs $(dumpe2fs -V 2>&1 | sed -n 's/^dumpe2fs \([^ ]*\).*/\1/p'), sgdisk $(sgdisk --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')"
  echo "- Hardware: QEMU q35 (TCG), 2 emulated NVDIMMs, 256 MiB pmem each, 128 KiB label areas (initially label-less)."
  echo "- Captured $(date -u +%F); $NFAIL failed step(s) (see capture.log)."
  echo "- pm0 = $PM0_NS (/dev/$PM0_BLK), pm1 = $PM1_NS (/dev/$PM1_BLK); devdax step used $DAX_NS."
  echo "- Step order: 1 fresh, 2 fsdax, 3 devdax and back, 4 dm (striped + linear, both live at once),"
  echo "  6 mkfs on the striped device, 7a dax mount of the striped xfs, dm removed, 5 GPT on pmem0,"
  echo "  6b default mkfs.xfs on pmem1, 7b ext4 (pmem0p1, dax) + xfs (pmem1, dax=always) mounts, ext4 dax=never."
  echo "  (The dm devices cover all of pmem0, so the GPT/ext4 step can only come after they are gone.)"
  echo "- \`sysfs-*/\` trees mirror /sys (\`sysfs-X/bus/nd/devices/namespace0.0/mode\` = /sys/bus/nd/devices/namespace0.0/mode"
  echo "  in state X); each has \`ls-l.txt\` (directory listings incl. driver links); \`block/NAME/holders.ls\` = \`ls -l /sys/block/NAME/holders/\`."
  echo "  Absent / unreadable attributes are listed per directory below."
  echo
  echo "## Key facts seen in this capture"
  echo
  echo "- fresh namespace0.0: DEVTYPE \`$(cd "$OUT"; grep -h DEVTYPE sysfs-fresh/bus/nd/devices/namespace0.0/uevent)\`, nstype \`$(f sysfs-fresh/bus/nd/devices/namespace0.0/nstype)\`, mode \`$(f sysfs-fresh/bus/nd/devices/namespace0.0/mode)\`, holder \`$(f sysfs-fresh/bus/nd/devices/namespace0.0/holder)\`"
  echo "- fsdax namespace $PM0_NS: DEVTYPE \`$(cd "$OUT"; grep -h DEVTYPE $fs/$PM0_NS/uevent)\`, mode \`$(f $fs/$PM0_NS/mode)\`, holder \`$PFN\` (plain device name, newline-terminated), holder_class \`$(f $fs/$PM0_NS/holder_class)\`, alt_name \`$(f $fs/$PM0_NS/alt_name)\`, uuid \`$(f $fs/$PM0_NS/uuid)\`"
  echo "- its pfn device $PFN: mode \`$(f $fs/$PFN/mode)\`, namespace \`$(f $fs/$PFN/namespace)\`, uuid \`$(f $fs/$PFN/uuid)\`, align \`$(f $fs/$PFN/align)\`, size \`$(f $fs/$PFN/size)\`, resource \`$(f $fs/$PFN/resource)\`"
  echo "- /sys/block/$PM0_BLK: dev \`$(f sysfs-fsdax/block/$PM0_BLK/dev)\`, size \`$(f sysfs-fsdax/block/$PM0_BLK/size)\` sectors, queue/dax \`$(f sysfs-fsdax/block/$PM0_BLK/queue/dax)\`"
  for m in sysfs-dm/block/dm-*; do [ -d "$OUT/$m" ] || continue
    echo "- ${m##*/} (\`$(f $m/dm/name)\`): queue/dax \`$(f $m/queue/dax)\`, dm/uuid \`$(f $m/dm/uuid)\`, dm/suspended \`$(f $m/dm/suspended)\`, io_min/io_opt \`$(f $m/queue/minimum_io_size)\`/\`$(f $m/queue/optimal_io_size)\`"; done
  echo "- pmem0 holders while both dm devices exist: \`$(cd "$OUT"; awk 'NR>1{print $9, $10, $11}' sysfs-dm/block/pmem0/holders.ls | tr '\n' ';')\`"
  echo "- dax mount options in mountinfo: \`$(cd "$OUT"; grep -h -E ' /mnt/(x|e) ' mountinfo-dax.txt | sed 's/^[0-9]* [0-9]* //' | tr '\n' ';')\`"
  echo "- dax=never mount: \`$(cd "$OUT"; grep -h ' /mnt/n ' mountinfo-nodax.txt | sed 's/^[0-9]* [0-9]* //')\`"
  echo "- statx attributes (STATX_ATTR_DAX = 0x200000): striped xfs \`$(cd "$OUT"; sed -n 's/^stat.attributes = //p' statx-xfs-striped.txt)\`, ext4 dax \`$(cd "$OUT"; sed -n 's/^stat.attributes = //p' statx-ext4-pmem0p1.txt)\`, ext4 dax=never \`$(cd "$OUT"; sed -n 's/^stat.attributes = //p' statx-ext4-nodax.txt)\`"
  if [ -s "$NOTES" ]; then echo; echo "## Notes"; echo; cat "$NOTES"; fi
  echo
  echo "## Files"
  echo
  echo "| file | produced by (in the guest) |"
  echo "|---|---|"
  sed 's/|/\\|/g; s/\t/` | `/; s/^/| `/; s/$/` |/' "$MAN"
  echo
  echo "Also: \`capture.log\` (every command run, with failures), \`MANIFEST.tsv\` (the table above as TSV)."
} > "$OUT/README.md"
rm -f "$NOTES"
say "=== done in $(( $(date +%s) - T0 )) s, $NFAIL failed step(s)"
du -sh "$OUT" | tee -a "$LOG"
[ "$NFAIL" -eq 0 ]
