#!/bin/bash
# VM suite 5 (runs INSIDE the guest): the 2 MiB DAX path. An aligned striped-xfs stack
# with verify_pmd reports its faults as NOPAGE (2 MiB pages) and an audit with every layer
# aligned; a partition at 1 MiB and a striped device with a 1 MiB chunk are each named by
# the audit at the right layer, and their faults fall back (FALLBACK), failing the run.
source "$(dirname "$0")/lib.sh"
NS='[{"name":"pm0","region":"region0","mode":"fsdax"},{"name":"pm1","region":"region1","mode":"fsdax"}]'
layers() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); [print("   %-10s %-5s %s %s" % (l["layer"], "ok" if l["pmd_ok"] else "NO", l["found"], ("  fix: " + l["fix"]) if l.get("fix") else "")) for m in d.get("dax_audit",{}).get("mounts",[]) for l in m["layers"]]' "$1"; }
faults() { jv "$1" "pmd_faults" ; }
# what the audit of run NAME says of each layer, and the faults it counted
audited() { layers "$W/$1.json"; echo "  pmd_faults: $(faults "$W/$1.json")"; }
# a misaligned stack: the run NAME of ARGS, its audit and faults, and its message
misaligned() { module "$1" "$2"; audited "$1"; echo "  msg: $(jv "$W/$1.json" msg)"; }
bad_layers() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(",".join(l["layer"] for m in d.get("dax_audit",{}).get("mounts",[]) for l in m["layers"] if not l["pmd_ok"]))' "$1"; }

section "platform"
grep -m1 -o -w -E 'pse|pdpe1gb' /proc/cpuinfo | sort -u | tr '\n' ' '; echo; cat /sys/kernel/mm/transparent_hugepage/enabled

section "aligned: striped (chunk 2M) xfs, verify_pmd"
ALIGNED="{\"namespaces\":$NS,\"devices\":[{\"name\":\"s2m\",\"target\":\"striped\",\"members\":[\"pm0\",\"pm1\"],\"chunk\":\"2M\"}],\"filesystems\":[{\"device\":\"s2m\",\"type\":\"xfs\"}],\"mounts\":[{\"path\":\"/mnt/a\",\"device\":\"s2m\"}],\"verify_pmd\":true}"
# tracefs mounted before the run, so what the run leaves in it can be seen after
grep -q ' tracefs ' /proc/mounts || mount -t tracefs nodev /sys/kernel/tracing
TRACEFS=$(awk '$3 == "tracefs" {print $2; exit}' /proc/mounts)
module aligned "$ALIGNED"
audited aligned
check "aligned: rc 0" [ "$(rc_of aligned)" = 0 ]
check "aligned: every layer allows 2 MiB faults" [ -z "$(bad_layers "$W/aligned.json")" ]
checkc "aligned: NOPAGE faults counted, none fell back" '[ "$(jv "$W/aligned.json" "pmd_faults./mnt/a.nopage")" -gt 0 ] && [ "$(jv "$W/aligned.json" "pmd_faults./mnt/a.fallback")" = 0 ]'
# the check traces into its own tracefs instance (instances/pmem-stack-pmd-<pid>), which
# it must remove, leaving the global event off and tracefs mounted as it found it
echo "  tracefs before the run: ${TRACEFS:-(not mounted)}; after: $(awk '$3 == "tracefs" {print $2}' /proc/mounts | tr '\n' ' '); instances left: $(ls "${TRACEFS:-/nonexistent}/instances" 2>/dev/null | tr '\n' ' ')"
checkc "aligned: the check left no file in the mount" '! ls -A /mnt/a | grep -q pmem-stack'
checkc "aligned: the check removed its tracefs instance, left the global event off and tracefs mounted" '[ "$(awk '\''$3 == "tracefs" {print $2; exit}'\'' /proc/mounts)" = "$TRACEFS" ] && [ -d "$TRACEFS/instances" ] && [ -z "$(ls "$TRACEFS/instances" | grep pmem-stack-pmd)" ] && [ "$(cat "$TRACEFS/events/fs_dax/dax_pmd_fault_done/enable")" = 0 ]'
facts facts
checkc "--facts carries the audit too" 'python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[\"dax_audit\"][\"mounts\"][0][\"mount\"] == \"/mnt/a\"" "$W/facts.json"'
section "the largest I/O of the striped device (queue/max_sectors_kb) on kernel $(uname -r)"
DMQ=/sys/block/$(basename "$(readlink -f /dev/mapper/s2m)")/queue
echo "  pmem0 max_sectors_kb $(cat /sys/block/pmem0/queue/max_sectors_kb), max_hw_sectors_kb $(cat /sys/block/pmem0/queue/max_hw_sectors_kb)"
dmsetup create probe-s --table "0 8192 striped 2 4096 /dev/pmem0 0 /dev/pmem1 0" --readonly 2>/dev/null && udevadm settle
echo "  a dm-striped device made by hand gets max_sectors_kb $(cat /sys/block/$(basename "$(readlink -f /dev/mapper/probe-s)")/queue/max_sectors_kb 2>/dev/null)"
dmsetup remove probe-s 2>/dev/null
echo "  s2m (made by the module) has max_sectors_kb $(cat $DMQ/max_sectors_kb)"
check "s2m: max_sectors_kb at least the 2 MiB chunk" [ "$(cat $DMQ/max_sectors_kb)" -ge 2048 ]
echo 1280 > $DMQ/max_sectors_kb
module lowered "$ALIGNED"
layers "$W/lowered.json"; echo "  with max_sectors_kb 1280: pmd_faults: $(faults "$W/lowered.json")"
# whatever this kernel does with a largest I/O below the chunk, the audit must say so
# rightly: the dm layer flagged exactly when the faults fall back
if [[ ",$(bad_layers "$W/lowered.json")," == *,dm,* ]]; then
  echo "  the audit flags the dm layer (max_sectors_kb below the chunk)"
  checkc "max_sectors_kb 1280: the audit flags dm and the faults did fall back" '[ "$(jv "$W/lowered.json" "pmd_faults./mnt/a.nopage")" = 0 ] && [ "$(jv "$W/lowered.json" "pmd_faults./mnt/a.fallback")" -gt 0 ]'
else
  echo "  the audit finds every layer fine"
  checkc "max_sectors_kb 1280: the audit finds dm fine and the faults were 2 MiB" '[ "$(jv "$W/lowered.json" "pmd_faults./mnt/a.nopage")" -gt 0 ] && [ "$(jv "$W/lowered.json" "pmd_faults./mnt/a.fallback")" = 0 ]'
fi
echo 2048 > $DMQ/max_sectors_kb
module aligned_down "${ALIGNED%\}},\"state\":\"absent\"}"

section "misaligned chunk: striped with a 1 MiB chunk"
CHUNK="{\"namespaces\":$NS,\"devices\":[{\"name\":\"s1m\",\"target\":\"striped\",\"members\":[\"pm0\",\"pm1\"],\"chunk\":\"1M\"}],\"filesystems\":[{\"device\":\"s1m\",\"type\":\"xfs\",\"mkfs_options\":[\"-d\",\"su=1m,sw=2\"]}],\"mounts\":[{\"path\":\"/mnt/c\",\"device\":\"s1m\"}],\"verify_pmd\":true,\"allow_data_loss\":true}"
misaligned chunk "$CHUNK"
checkc "1M chunk: the audit names the dm layer" '[[ ",$(bad_layers "$W/chunk.json")," == *,dm,* ]]'
checkc "1M chunk: faults fell back, none mapped 2 MiB" '[ "$(jv "$W/chunk.json" "pmd_faults./mnt/c.nopage")" = 0 ] && [ "$(jv "$W/chunk.json" "pmd_faults./mnt/c.fallback")" -gt 0 ]'
checkc "1M chunk: the run fails saying all faults fell back" '[ "$(rc_of chunk)" = 1 ] && grep -q "no 2 MiB DAX faults" "$W/chunk.json"'
module chunk_down "${CHUNK%\}},\"state\":\"absent\"}"

section "misaligned partition: ext4 on a partition at 1 MiB"
PART="{\"namespaces\":$NS,\"partitions\":[{\"name\":\"p1m\",\"disk\":\"pm0\",\"start\":\"1M\",\"size\":\"512M\"}],\"filesystems\":[{\"device\":\"p1m\",\"type\":\"ext4\"}],\"mounts\":[{\"path\":\"/mnt/p\",\"device\":\"p1m\"}],\"verify_pmd\":true,\"allow_data_loss\":true}"
misaligned part "$PART"
checkc "1M partition: the audit names the partition layer" '[[ ",$(bad_layers "$W/part.json")," == *,partition,* ]]'
checkc "1M partition: the warning names the fix" 'grep -q "fix: start: 2M" "$W/part.json"'
checkc "1M partition: faults fell back" '[ "$(jv "$W/part.json" "pmd_faults./mnt/p.nopage")" = 0 ] && [ "$(jv "$W/part.json" "pmd_faults./mnt/p.fallback")" -gt 0 ]'
summary
