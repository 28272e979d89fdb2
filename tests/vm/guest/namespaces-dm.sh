#!/bin/bash
# VM suite 1 (runs INSIDE the guest): namespaces and device-mapper on a real kernel.
# From fresh label-less DIMMs: check mode changes nothing; the striped recipe converges
# (table = 2 x floor(min/4096) x 4096, chunk 4096); a second run changes nothing and
# starts no process; --facts + --actual plans like the live run; a chunk change is
# refused without allow_data_loss and done with it; teardown; linear (sum of members);
# fsdax -> devdax and back, refused while a foreign dm device holds the namespace; a
# stack built by hand with ndctl/dmsetup is recognised as converged.
source "$(dirname "$0")/lib.sh"

NS='[{"name":"pm0","region":"region0","mode":"fsdax"},{"name":"pm1","region":"region1","mode":"fsdax"}]'
STRIPED="{\"namespaces\":$NS,\"devices\":[{\"name\":\"pmem-striped\",\"target\":\"striped\",\"members\":[\"pm0\",\"pm1\"],\"chunk\":\"2M\"}]}"

section "fresh DIMMs: check mode changes nothing"
ndctl list -N -R
facts facts0
module check1 "${STRIPED%\}},\"_ansible_check_mode\":true,\"_ansible_diff\":true}"
facts facts1
check "check mode: rc 0" [ "$(rc_of check1)" = 0 ]
check "check mode: changed" [ "$(jv "$W/check1.json" changed)" = true ]
check "check mode: plan" [ "$(actions "$W/check1.json")" = "reconfigure_namespace,reconfigure_namespace,create_dm" ]
check "check mode: facts before == after" cmp -s "$W/facts0.json" "$W/facts1.json"
check "check mode: no process started" [ -z "$(spawns check1)" ]
check "check mode: diff carries the dm table" grep -q '"before_header":"dm table pmem-striped (before)"' "$W/check1.json"

section "striped recipe converges"
module striped1 "$STRIPED"
check "striped: rc 0" [ "$(rc_of striped1)" = 0 ]
check "striped: changed" [ "$(jv "$W/striped1.json" changed)" = true ]
check "striped: the run did what check mode planned" [ "$(jv "$W/striped1.json" plan)" = "$(jv "$W/check1.json" plan)" ]
echo "  processes started: $(spawns striped1 | tr '\n' ' ')"
TIMING_OK=$(python3 - "$W/striped1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); t = r["timing"]; ops = t["operations"]
print("  operations:", [(o["op"], round(o["ms"]), round(o["external_ms"])) for o in ops], file=sys.stderr)
ok = (len(ops) == len(r["done"]) and all(0 <= o["external_ms"] <= o["ms"] for o in ops)
      and abs(sum(o["external_ms"] for o in ops) - t["external_ms"]) < 0.01
      and sum(o["ms"] for o in ops) <= t["wall_ms"] and {"namespace", "dm_create"} <= {o["op"] for o in ops})
print("yes" if ok else "no")
PY
)
check "striped: timing.operations has one entry per step done, external time within each, summing to external_ms" [ "$TIMING_OK" = yes ]
if [ "${PMEM_STACK_CHECK_REPROBE:-0}" != 0 ]; then
  # tests/vm.rs sets it: each re-probe after a step (all probes but the first and the
  # last) was compared with a full probe, and the run would have failed on a difference
  check "striped: each re-probe after a step was checked against a full probe (PMEM_STACK_CHECK_REPROBE: $(jv "$W/striped1.json" timing.reprobe_checks) of $(jv "$W/striped1.json" timing.probes) probes)" \
    [ "$(jv "$W/striped1.json" timing.reprobe_checks)" = "$(( $(jv "$W/striped1.json" timing.probes) - 2 ))" ]
fi
P0=$(ns_blk pm0); P1=$(ns_blk pm1)
echo "  pm0=$P0 pm1=$P1"
S0=$(size_of "$P0"); S1=$(size_of "$P1"); MIN=$(( S0 < S1 ? S0 : S1 ))
WANT="0 $(( 2 * (MIN / 4096) * 4096 )) striped 2 4096 $(devno "$P0") 0 $(devno "$P1") 0"
echo "  dmsetup table: $(dmtable pmem-striped)"
echo "  expected:      $WANT"
check "striped: dmsetup table is 2 x floor(min/4096) x 4096, chunk 4096, pm0 then pm1" [ "$(dmtable pmem-striped)" = "$WANT" ]
check "striped: /dev/mapper/pmem-striped exists" [ -b /dev/mapper/pmem-striped ]
checkc "striped: namespaces pm0 and pm1 by name, each fsdax, and no other" '[ "$(ns_mode pm0)/$(ns_mode pm1)" = fsdax/fsdax ] && [ "$(ndctl list -N | grep -c '\''"name":'\'')" = 2 ]'
DM=$(basename "$(readlink -f /dev/mapper/pmem-striped)")
check "striped: the dm device can do DAX (queue/dax=1)" [ "$(cat /sys/block/$DM/queue/dax)" = 1 ]

section "second run: nothing to do, nothing started"
module striped2 "$STRIPED"
check "second run: rc 0" [ "$(rc_of striped2)" = 0 ]
check "second run: changed false" [ "$(jv "$W/striped2.json" changed)" = false ]
check "second run: msg 'No changes.'" [ "$(jv "$W/striped2.json" msg)" = "No changes." ]
check "second run: no process started (no mutating command)" [ -z "$(spawns striped2)" ]
module_stdin striped3 "{\"ANSIBLE_MODULE_ARGS\":$STRIPED}"
check "same arguments through stdin (wrapped): changed false" [ "$(jv "$W/striped3.json" changed)" = false ]

section "a chunk change on a device in use: refused, then done"
mkfs.ext4 -q -F -b 4096 -E stride=512,stripe_width=1024 /dev/mapper/pmem-striped
mkdir -p /mnt/hand && mount -o dax=always /dev/mapper/pmem-striped /mnt/hand && echo data > /mnt/hand/f
CHUNK="${STRIPED/\"chunk\":\"2M\"/\"chunk\":\"4M\"}"
BEFORE=$(dmtable pmem-striped)
module chunk1 "$CHUNK"
check "chunk change: refused (rc 1)" [ "$(rc_of chunk1)" = 1 ]
check "chunk change: the message names what would be lost" grep -q 'the ext4 filesystem on /dev/mapper/pmem-striped' "$W/chunk1.json"
check "chunk change: the message names allow_data_loss" grep -q 'allow_data_loss: true' "$W/chunk1.json"
check "chunk change: table unchanged" [ "$(dmtable pmem-striped)" = "$BEFORE" ]
check "chunk change: still mounted, data there" [ "$(cat /mnt/hand/f)" = data ]
check "chunk change: refusal started no process" [ -z "$(spawns chunk1)" ]
ALLOW="${CHUNK%\}},\"allow_data_loss\":true}"
facts facts2
"$BIN" --actual "$W/facts2.json" <(printf '%s' "$ALLOW") > "$W/offline.json"
module chunk2 "$ALLOW"
check "chunk change allowed: rc 0" [ "$(rc_of chunk2)" = 0 ]
check "chunk change allowed: umount, reload" [ "$(actions "$W/chunk2.json")" = "umount,reload_dm" ]
check "--facts + --actual gives the live run's plan" [ "$(jv "$W/offline.json" plan)" = "$(jv "$W/chunk2.json" plan)" ]
check "--actual is a dry run" [ "$(jv "$W/offline.json" check_mode)" = true ]
checkc "chunk change allowed: chunk 8192 in the table" '[ "$(dmtable pmem-striped | awk '\''{print $3, $5}'\'')" = "striped 8192" ]'
echo "  after the reload: queue/max_sectors_kb $(cat /sys/block/$DM/queue/max_sectors_kb) (chunk 4 MiB)"
check "chunk change allowed: the reload raised queue/max_sectors_kb to the 4 MiB chunk" [ "$(cat /sys/block/$DM/queue/max_sectors_kb)" -ge 4096 ]
module chunk3 "$ALLOW"
check "chunk change: then converged" [ "$(jv "$W/chunk3.json" changed)" = false ]

section "teardown of the striped device"
module absent1 "${STRIPED%\}},\"state\":\"absent\"}"
checkc "absent: rc 0, removes the dm device" '[ "$(rc_of absent1)" = 0 ] && [ ! -e /dev/mapper/pmem-striped ]'
check "absent: namespaces kept (warning)" grep -q 'left in place' "$W/absent1.json"

section "linear over two namespaces"
LINEAR="{\"namespaces\":$NS,\"devices\":[{\"name\":\"pmem-linear\",\"target\":\"linear\",\"members\":[\"pm0\",\"pm1\"]}]}"
module linear1 "$LINEAR"
WANT="0 $S0 linear $(devno "$P0") 0|$S0 $S1 linear $(devno "$P1") 0"
echo "  dmsetup table: $(dmtable pmem-linear)"
checkc "linear: rc 0, create_dm only" '[ "$(rc_of linear1)" = 0 ] && [ "$(actions "$W/linear1.json")" = create_dm ]'
check "linear: length = sum of members" [ "$(dmtable pmem-linear)" = "$WANT" ]
module linear2 "$LINEAR"
checkc "linear: second run unchanged, no process" '[ "$(jv "$W/linear2.json" changed)" = false ] && [ -z "$(spawns linear2)" ]'

section "namespace mode: refused while a dm device holds it, then fsdax -> devdax -> fsdax"
DEVDAX='{"namespaces":[{"name":"pm1","region":"region1","mode":"devdax"}],"allow_data_loss":true}'
module mode1 "$DEVDAX"
check "devdax while held by pmem-linear: refused" [ "$(rc_of mode1)" = 1 ]
check "the refusal names the holder" grep -q 'held by dm device pmem-linear' "$W/mode1.json"
checkc "namespace unchanged" '[ "$(ns_mode pm0)/$(ns_mode pm1)" = fsdax/fsdax ]'
module linear3 "${LINEAR%\}},\"state\":\"absent\"}"
module mode2 "$DEVDAX"
checkc "devdax: rc 0, reconfigured" '[ "$(rc_of mode2)" = 0 ] && [ "$(actions "$W/mode2.json")" = reconfigure_namespace ]'
check "devdax: ndctl shows devdax for pm1" [ "$(ns_mode pm1)" = devdax ]
checkc "devdax: a /dev/dax character device" 'ls /dev/dax* >/dev/null'
module mode3 '{"namespaces":[{"name":"pm1","region":"region1","mode":"fsdax"}]}'
checkc "devdax -> fsdax without allow_data_loss: refused" '[ "$(rc_of mode3)" = 1 ] && grep -q '\''devdax namespace pm1'\'' "$W/mode3.json"'
module mode4 '{"namespaces":[{"name":"pm1","region":"region1","mode":"fsdax"}],"allow_data_loss":true}'
checkc "devdax -> fsdax with allow_data_loss: done" '[ "$(rc_of mode4)" = 0 ] && [ "$(ns_mode pm1)" = fsdax ]'
module mode5 '{"namespaces":[{"name":"pm1","region":"region1","mode":"fsdax"}]}'
check "then unchanged" [ "$(jv "$W/mode5.json" changed)" = false ]

section "a stack built by hand (manual procedure) is recognised"
P0=$(ns_blk pm0); P1=$(ns_blk pm1)
S0=$(size_of "$P0"); S1=$(size_of "$P1"); MIN=$(( S0 < S1 ? S0 : S1 ))
dmsetup create striped-pmem --table "0 $(( 2 * (MIN / 4096) * 4096 )) striped 2 4096 /dev/$P0 0 /dev/$P1 0"
udevadm settle
module hand1 "{\"namespaces\":$NS,\"devices\":[{\"name\":\"striped-pmem\",\"target\":\"striped\",\"members\":[\"pm0\",\"pm1\"]}]}"
checkc "hand-made (named namespaces): changed false" '[ "$(rc_of hand1)" = 0 ] && [ "$(jv "$W/hand1.json" changed)" = false ]'
module hand2 "{\"devices\":[{\"name\":\"striped-pmem\",\"target\":\"striped\",\"members\":[\"/dev/$P0\",\"/dev/$P1\"],\"chunk\":2097152}]}"
checkc "hand-made (members by path): changed false" '[ "$(rc_of hand2)" = 0 ] && [ "$(jv "$W/hand2.json" changed)" = false ]'
dmsetup remove striped-pmem
# fully by hand from label-less DIMMs, as the manual procedure does (no names)
ndctl disable-region all >/dev/null && ndctl init-labels -f all >/dev/null && ndctl enable-region all >/dev/null
for r in region0 region1; do ndctl create-namespace -r $r --mode=fsdax --map=dev >/dev/null; done
udevadm settle
A=/dev/pmem0; B=/dev/pmem1
SA=$(blockdev --getsz $A); SB=$(blockdev --getsz $B); MIN=$(( SA < SB ? SA : SB ))
dmsetup create striped-pmem --table "0 $(( 2 * (MIN / 4096) * 4096 )) striped 2 4096 $A 0 $B 0"
udevadm settle
module hand3 "{\"devices\":[{\"name\":\"striped-pmem\",\"target\":\"striped\",\"members\":[\"$A\",\"$B\"]}]}"
checkc "manual procedure stack: changed false" '[ "$(rc_of hand3)" = 0 ] && [ "$(jv "$W/hand3.json" changed)" = false ]'
check "manual procedure stack: no process started" [ -z "$(spawns hand3)" ]

summary
