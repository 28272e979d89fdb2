#!/bin/bash
# VM suite (runs INSIDE the guest, 2 DIMMs of 1 GiB): what the README promises that no
# other suite shows on a real kernel.
# 1. One converge of every namespace option: a `sector` and a `raw` namespace, fsdax with
#    the page map in RAM (`map: mem`) and fsdax with a 4 KiB `align`, side by side in
#    region0; ext4 with the user's `mkfs_options` mounted `dax: inode` (a file with the
#    DAX flag maps the media, one without does not); ext4 on the sector namespace
#    (no DAX); a GPT on a linear dm device over region1, its partition exposed as a
#    kpartx-style mapping, xfs on it. Check mode first (nothing changes, its plan is the
#    run's), then what ndctl, dmsetup, the superblocks and mountinfo show; a second run
#    is unchanged and starts no process.
# 2. A busy mount: a file open on it; `dax: never` is refused without allow_data_loss and
#    done with it, by a lazy detach (the open file still reads; one mount at the path).
# 3. A mount path through a directory not owned by root is refused, naming it, and
#    nothing is created through it.
source "$(dirname "$0")/lib.sh"

NS='{"name":"nsec","region":"region0","mode":"sector","size":"128M"},{"name":"nraw","region":"region0","mode":"raw","size":"128M"},{"name":"nmem","region":"region0","mode":"fsdax","map":"mem","size":"256M"},{"name":"n4k","region":"region0","mode":"fsdax","align":"4K","size":"256M"},{"name":"pm1","region":"region1","mode":"fsdax"}'
DEV='{"name":"lin","target":"linear","members":["pm1"]}'
PARTS='{"name":"lp1","disk":"lin","start":"2M"}'
FS='{"device":"nmem","type":"ext4","mkfs_options":["-I","512","-m","1"]},{"device":"n4k","type":"ext4"},{"device":"nsec","type":"ext4"},{"device":"lp1","type":"xfs"}'
MNT='{"path":"/mnt/inode","device":"nmem","dax":"inode"},{"path":"/mnt/k4","device":"n4k","dax":"always"},{"path":"/mnt/sec","device":"nsec","dax":"never"},{"path":"/mnt/gpt","device":"lp1","dax":"always"}'
ALL="{\"namespaces\":[$NS],\"devices\":[$DEV],\"partitions\":[$PARTS],\"filesystems\":[$FS],\"mounts\":[$MNT]}"
# "mode/map/align/sector_size" of the namespace named $1, from ndctl's JSON
ns_shape() { ndctl list -N | python3 -c "import json,sys; d=json.load(sys.stdin); d=d if isinstance(d,list) else [d]; n=[n for n in d if n.get('name')=='$1']; print('%s/%s/%s/%s' % (n[0].get('mode',''), n[0].get('map',''), n[0].get('align',''), n[0].get('sector_size','')) if n else '')"; }
mnt_opts() { awk -v p="$1" '$5 == p {print $6 "," $NF}' /proc/self/mountinfo; }
dax_attr() { local a; a=$(xfs_io -c 'statx -r' "$1" 2>/dev/null | sed -n 's/^stat.attributes = //p'); [ -n "$a" ] && echo $(( (a & 0x200000) != 0 )); }

section "every namespace option, GPT on dm, dax: inode: check mode"
# several namespaces in region0 need its DIMM's labels initialised first, as the module
# says (region1 stays fresh: its label-less namespace is converted whole)
NMEM0=$(cut -d, -f1 /sys/bus/nd/devices/region0/mapping0)
echo "  region0 is on $NMEM0"
ndctl disable-region region0 >/dev/null; ndctl init-labels -f $NMEM0 >/dev/null; ndctl enable-region region0 >/dev/null
ndctl list -R
module check1 "$(with "$ALL" '"_ansible_check_mode":true')"
NSBEFORE=$(ndctl list -N)
checkc "check mode: rc 0, changed, nothing done, no process started" '[ "$(rc_of check1)" = 0 ] && [ "$(jv "$W/check1.json" changed)" = true ] && [ -z "$(spawns check1)" ]'
echo "  plan: $(actions "$W/check1.json")"

section "converge"
module all1 "$ALL"
checkc "converge: rc 0, changed" '[ "$(rc_of all1)" = 0 ] && [ "$(jv "$W/all1.json" changed)" = true ]'
check "converge: the run did what check mode planned" [ "$(jv "$W/all1.json" plan)" = "$(jv "$W/check1.json" plan)" ]
ndctl list -N | python3 -c "import json,sys; d=json.load(sys.stdin); d=d if isinstance(d,list) else [d]; [print('  ', n.get('name'), n.get('mode'), n.get('map',''), n.get('align',''), n.get('sector_size',''), n.get('size'), n.get('blockdev','')) for n in d]"
for n in nsec nraw nmem n4k; do echo "  $n: $(ns_shape $n)"; done
checkc "sector: a btt namespace (mode sector) with its block device" '[[ "$(ns_shape nsec)" == sector/* ]] && [ -b "/dev/$(ns_blk nsec)" ]'
checkc "raw: mode raw, no page map" '[[ "$(ns_shape nraw)" == raw//* ]] && [ -b "/dev/$(ns_blk nraw)" ]'
checkc "map: mem: fsdax with the page map in RAM" '[[ "$(ns_shape nmem)" == fsdax/mem/* ]]'
checkc "align: 4K: fsdax with a 4096-byte alignment" '[[ "$(ns_shape n4k)" == fsdax/dev/4096/* ]]'
NMEM=/dev/$(ns_blk nmem)
dumpe2fs -h "$NMEM" 2>/dev/null | grep -E "^(Inode size|Reserved block count|Block count|RAID stride)" | sed 's/^/  nmem: /'
BC=$(dumpe2fs -h "$NMEM" 2>/dev/null | sed -n 's/^Block count: *//p'); RB=$(dumpe2fs -h "$NMEM" 2>/dev/null | sed -n 's/^Reserved block count: *//p')
sb() { dumpe2fs -h "$NMEM" 2>/dev/null | awk -F: -v k="$1" '$1 == k {gsub(/[ \t]/, "", $2); print $2}'; }
checkc "mkfs_options -I 512 -m 1 made it to the real mke2fs: inode size 512, 1% reserved" '[ "$(sb "Inode size")" = 512 ] && [ -n "$BC" ] && [ "$RB" = $(( BC / 100 )) ]'
checkc "ext4 on nmem still has the DAX geometry (stride 512)" '[ "$(sb "RAID stride")" = 512 ]'
echo "  /mnt/inode: $(mnt_opts /mnt/inode)"; echo "  /mnt/k4: $(mnt_opts /mnt/k4)"; echo "  /mnt/sec: $(mnt_opts /mnt/sec)"; echo "  /mnt/gpt: $(mnt_opts /mnt/gpt)"
checkc "dax: inode: /mnt/inode mounted with dax=inode" 'mnt_opts /mnt/inode | grep -q "dax=inode"'
mkdir /mnt/inode/daxdir /mnt/inode/plain
xfs_io -c 'chattr +x' /mnt/inode/daxdir
head -c 4M /dev/urandom > /mnt/inode/daxdir/f; head -c 4M /dev/urandom > /mnt/inode/plain/f; sync
echo "  STATX_ATTR_DAX: daxdir/f $(dax_attr /mnt/inode/daxdir/f), plain/f $(dax_attr /mnt/inode/plain/f)"
checkc "dax: inode: a file under a directory with the DAX flag maps the media, another does not" '[ "$(dax_attr /mnt/inode/daxdir/f)" = 1 ] && [ "$(dax_attr /mnt/inode/plain/f)" = 0 ]'
checkc "align 4K: /mnt/k4 mounted with dax=always, its files DAX" 'mnt_opts /mnt/k4 | grep -q "dax=always" && head -c 1M /dev/zero > /mnt/k4/f && [ "$(dax_attr /mnt/k4/f)" = 1 ]'
checkc "sector: ext4 mounted at /mnt/sec with dax=never, files not DAX" 'mnt_opts /mnt/sec | grep -q "dax=never" && head -c 1M /dev/zero > /mnt/sec/f && [ "$(dax_attr /mnt/sec/f)" = 0 ]'
LIN=$(basename "$(readlink -f /dev/mapper/lin)")
echo "  dm: lin: $(dmtable lin); lin1: $(dmtable lin1)"
checkc "GPT on the dm device: partition 1 in the GPT at 2 MiB" '[ "$(sgdisk -i 1 /dev/mapper/lin 2>/dev/null | sed -n "s/^First sector: \([0-9]*\).*/\1/p")" = 4096 ]'
checkc "GPT on the dm device: a kpartx-style mapping lin1, linear over lin at sector 4096" '[ -b /dev/mapper/lin1 ] && [ "$(dmtable lin1 | awk '\''{print $3, $4, $5}'\'')" = "linear $(cat /sys/block/$LIN/dev) 4096" ]'
checkc "GPT on the dm device: xfs mounted with dax=always at /mnt/gpt, its files DAX" 'mnt_opts /mnt/gpt | grep -q "dax=always" && head -c 4M /dev/urandom > /mnt/gpt/data && sync && [ "$(dax_attr /mnt/gpt/data)" = 1 ]'
(cd /mnt/gpt && sha256sum data) > "$W/gpt.sum"

section "second run"
module all2 "$ALL"
checkc "second run: rc 0, changed false, no process started" '[ "$(rc_of all2)" = 0 ] && [ "$(jv "$W/all2.json" changed)" = false ] && [ -z "$(spawns all2)" ]'
echo "  plan: $(actions "$W/all2.json")"

section "a busy mount: a file open on /mnt/gpt"
exec 4< /mnt/gpt/data
NEVER="${ALL/'"path":"/mnt/gpt","device":"lp1","dax":"always"'/'"path":"/mnt/gpt","device":"lp1","dax":"never"'}"
module busy1 "$NEVER"
echo "  msg: $(jv "$W/busy1.json" msg)"
checkc "dax: never: refused at the umount, saying to close the files (allow_data_loss cannot help); still dax=always" '[ "$(rc_of busy1)" = 1 ] && grep -q "files are open on it; refused (close them first" "$W/busy1.json" && mnt_opts /mnt/gpt | grep -q "dax=always"'
# a lazy detach cannot change dax=: the filesystem lives on with its open file, and
# mounting the device again shares it, dax=always included (seen on 6.1)
module busy2 "$(with "$NEVER" '"allow_data_loss":true')"
echo "  msg: $(jv "$W/busy2.json" msg)"
checkc "dax: never, even with allow_data_loss: refused at the umount, saying to close the files; nothing done, still dax=always" '[ "$(rc_of busy2)" = 1 ] && grep -q "files are open on it; refused (close them first" "$W/busy2.json" && [ -z "$(jv "$W/busy2.json" done -l)" ] && mnt_opts /mnt/gpt | grep -q "dax=always"'
# another device mounted at the path: with allow_data_loss the busy mount is detached
# lazily and lives on for the open file
umount /mnt/k4
MOVED="${ALL/'{"path":"/mnt/k4","device":"n4k","dax":"always"},'/}"
MOVED="${MOVED/'"path":"/mnt/gpt","device":"lp1"'/'"path":"/mnt/gpt","device":"n4k"'}"
module move1 "$MOVED"
echo "  msg: $(jv "$W/move1.json" msg)"
checkc "another device at /mnt/gpt, without allow_data_loss: refused before anything runs" '[ "$(rc_of move1)" = 1 ] && grep -q "is mounted there. Set allow_data_loss: true" "$W/move1.json" && [ -z "$(spawns move1)" ]'
module move2 "$(with "$MOVED" '"allow_data_loss":true')"
echo "  plan: $(actions "$W/move2.json"); /mnt/gpt now: $(awk '$5 == "/mnt/gpt" {print $(NF-2), $(NF-1)}' /proc/self/mountinfo | tr '\n' ' ')"
checkc "with allow_data_loss: rc 0, umount then mount" '[ "$(rc_of move2)" = 0 ] && [ "$(actions "$W/move2.json")" = umount,mount ]'
checkc "lazily detached: one mount at /mnt/gpt, the ext4 of n4k with dax=always" '[ "$(awk '\''$5 == "/mnt/gpt"'\'' /proc/self/mountinfo | wc -l)" = 1 ] && [ "$(awk '\''$5 == "/mnt/gpt" {print $(NF-2)}'\'' /proc/self/mountinfo)" = ext4 ] && mnt_opts /mnt/gpt | grep -q "dax=always"'
checkc "the file open on the detached xfs still reads, whole" '[ "$(sha256sum < /proc/self/fd/4 | cut -d" " -f1)" = "$(cut -d" " -f1 "$W/gpt.sum")" ]'
exec 4<&-
module move3 "$MOVED"
check "then unchanged" [ "$(jv "$W/move3.json" changed)" = false ]
module never1 "$(with "$NEVER" '"allow_data_loss":true')"
checkc "the file closed: the xfs back at /mnt/gpt with dax=never, its data intact" '[ "$(rc_of never1)" = 0 ] && mnt_opts /mnt/gpt | grep -q "dax=never" && (cd /mnt/gpt && sha256sum -c --quiet "$W/gpt.sum")'
module never2 "$NEVER"
check "then unchanged" [ "$(jv "$W/never2.json" changed)" = false ]

section "a mount path through a directory not owned by root"
umount /mnt/sec
mkdir -p /srv/u && chown 1000:1000 /srv/u
OWNED="${NEVER/'"path":"/mnt/sec"'/'"path":"/srv/u/sec"'}"
module owned1 "$OWNED"
echo "  msg: $(jv "$W/owned1.json" msg)"
checkc "refused (rc 1) at the mount, naming /srv/u and its owner" '[ "$(rc_of owned1)" = 1 ] && grep -q "/srv/u is owned by uid 1000, not root" "$W/owned1.json"'
checkc "nothing made through it, nothing mounted there" '[ -z "$(ls -A /srv/u)" ] && ! grep -q " /srv/u" /proc/self/mountinfo'

summary
