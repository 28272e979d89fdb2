#!/bin/bash
# VM suite 3, second boot (runs INSIDE the guest) with the DIMMs attached in the opposite
# order, so /dev/pmem0 and /dev/pmem1 swap: run what the boot units run (each enabled
# instance of the replay template, its own saved state), then check the
# dm device is rebuilt by namespace name in the right member order, mounted with DAX,
# the data intact, and a following module run unchanged. Then teardown: refused while a
# foreign dm device holds the stack (naming it), done after, and idempotent. A second
# persisted stack (linear ext4 on /mnt/b, its own task) comes back by the same replay;
# its teardown leaves A's files and the shared template, then A's (the last) takes all.
source "$(dirname "$0")/lib.sh"
: "${PMEM_STACK_ROOT:?}" "${KEEP:?}"
R=$PMEM_STACK_ROOT
ARGS=$(cat "$KEEP/args.json")
ARGS_B=$(cat "$KEEP/args-b.json")
section "after the reboot"
cat "$KEEP/boot1.txt"
echo "now: pm0=$(ns_blk pm0) pm1=$(ns_blk pm1)"
checkc "the DIMMs swapped: pm0 (found by name) is not on the same /dev/pmemN" '[ -n "$(ns_blk pm0)" ] && ! grep -q "^pm0=$(ns_blk pm0) " "$KEEP/boot1.txt"'
check "no dm device before the replay" [ ! -e /dev/mapper/pmem-striped ]
EXEC=$(sed -n 's/^ExecStart=//p' "$R/etc/systemd/system/pmem-stack@.service")
echo "  template's ExecStart: $EXEC"
# what systemd starts before local-fs-pre.target: each enabled instance, %i its
# instance (in parallel there, never interleaving: the run lock; one after the other here)
: > "$W/boot.rcs"; : > "$W/boot.trace"
for LINK in "$R"/etc/systemd/system/local-fs-pre.target.wants/pmem-stack@*.service; do
  UNIT=$(basename "$LINK"); I=${UNIT#pmem-stack@}; I=${I%.service}
  read -r -a CMD <<< "${EXEC//%i/$I}"
  CMD[0]="$R${CMD[0]}"   # the installed binary, under the kept root
  strace -f -qq -e trace=execve -e signal=none -o "$W/boot-$I.trace" "${CMD[@]}" > "$W/boot-$I.json" 2> "$W/boot-$I.err"
  echo "$UNIT $?" >> "$W/boot.rcs"
  cat "$W/boot-$I.trace" >> "$W/boot.trace"
  echo "  $UNIT journal line: $(cat "$W/boot-$I.err")"
  echo "  done: $(jv "$W/boot-$I.json" done | python3 -c 'import json,sys; print([s["action"] for s in json.load(sys.stdin)])')"
  echo "  skipped: $(jv "$W/boot-$I.json" skipped_steps | python3 -c 'import json,sys; print([(s["step"]["action"], s["why"]) for s in json.load(sys.stdin) or []])')"
done
sed 's/^/  rc: /' "$W/boot.rcs"
checkc "replay: two instances (A's and B's), rc 0 each" '[ "$(wc -l < "$W/boot.rcs")" = 2 ] && [ "$(grep -c " 0$" "$W/boot.rcs")" = 2 ]'
checkc "replay: nothing destructive planned" '! grep -q "\"destructive\":true" "$W"/boot-*.json'
checkc "replay: no mkfs run" '! grep -o "execve(\"[^\"]*\"" "$W/boot.trace" | grep -q mkfs'
P0=$(ns_blk pm0); P1=$(ns_blk pm1); S0=$(size_of "$P0"); S1=$(size_of "$P1"); MIN=$(( S0 < S1 ? S0 : S1 ))
WANT="0 $(( 2 * (MIN / 4096) * 4096 )) striped 2 4096 $(devno "$P0") 0 $(devno "$P1") 0"
echo "  table: $(dmtable pmem-striped)"; echo "  want:  $WANT"
check "replay: table rebuilt with pm0 first, pm1 second (by name)" [ "$(dmtable pmem-striped)" = "$WANT" ]
checkc "replay: mounted with dax=always" 'grep -q " /mnt/pmem .*dax=always" /proc/self/mountinfo'
A=$(xfs_io -c 'statx -r' /mnt/pmem/data | sed -n 's/^stat.attributes = //p')
checkc "replay: the data file has STATX_ATTR_DAX" '[ -n "$A" ] && [ $(( A & 0x200000 )) -ne 0 ]'
checkc "replay: data intact (sha256)" '(cd /mnt/pmem && sha256sum -c --quiet "$KEEP/data.sha256")'
module after1 "$ARGS"
checkc "a following module run: changed false" '[ "$(rc_of after1)" = 0 ] && [ "$(jv "$W/after1.json" changed)" = false ]'
section "the second persisted stack"
checkc "replay: B's linear device rebuilt over pm2" '[ "$(dmtable pmem-lin)" = "0 $(size_of "$(ns_blk pm2)") linear $(devno "$(ns_blk pm2)") 0" ]'
checkc "replay: /mnt/b mounted with dax=always" 'grep -q " /mnt/b .*dax=always" /proc/self/mountinfo'
checkc "replay: B's data intact (sha256)" '(cd /mnt/b && sha256sum -c --quiet "$KEEP/data-b.sha256")'
module afterb "$ARGS_B"
checkc "B run after the reboot: changed false" '[ "$(rc_of afterb)" = 0 ] && [ "$(jv "$W/afterb.json" changed)" = false ]'
STATE_A=$(ls "$R"/etc/pmem-stack/state.d/pmem-striped-*.json 2>/dev/null)
sha256sum "$STATE_A" "$R/etc/systemd/system/mnt-pmem.mount" > "$W/a-files.sha256"
module absentb "${ARGS_B%\}},\"state\":\"absent\"}"
check "B absent: rc 0" [ "$(rc_of absentb)" = 0 ]
echo "  plan: $(actions "$W/absentb.json")"
checkc "B absent: its state, replay instance link, unit and link removed" '[ -z "$(ls "$R"/etc/pmem-stack/state.d/pmem-lin-*.json 2>/dev/null)" ] && [ -z "$(ls "$R"/etc/systemd/system/local-fs-pre.target.wants/pmem-stack@pmem-lin-*.service 2>/dev/null)" ] && [ ! -e "$R/etc/systemd/system/mnt-b.mount" ] && [ ! -L "$R/etc/systemd/system/local-fs.target.wants/mnt-b.mount" ] && [ ! -e /dev/mapper/pmem-lin ]'
checkc "B absent: A's state, replay instance link and unit, the template and the binary stay" 'sha256sum -c --quiet "$W/a-files.sha256" && [ -L "$R/etc/systemd/system/local-fs.target.wants/mnt-pmem.mount" ] && [ -L "$R/etc/systemd/system/local-fs-pre.target.wants/pmem-stack@$(basename "$STATE_A" .json).service" ] && [ -f "$R/etc/systemd/system/pmem-stack@.service" ] && [ -e "$R/usr/local/sbin/pmem_stack" ]'
module after2 "$ARGS"
checkc "A run after B's teardown: changed false" '[ "$(rc_of after2)" = 0 ] && [ "$(jv "$W/after2.json" changed)" = false ]'
section "teardown"
# a dm device these arguments do not declare, over pm0's pmem device
dmsetup create foreign --table "0 8192 linear /dev/$(ns_blk pm0) 0" && udevadm settle
ABSENT="${ARGS%\}},\"state\":\"absent\"}"
module absent1 "${ABSENT%\}},\"allow_data_loss\":true}"
checkc "absent + allow_data_loss refused while a foreign dm device holds pm0, naming it" '[ "$(rc_of absent1)" = 1 ] && grep -q "held by foreign" "$W/absent1.json"'
checkc "nothing torn down by the refusal" '[ -f "$STATE_A" ] && [ -e /dev/mapper/pmem-striped ] && grep -q " /mnt/pmem " /proc/self/mountinfo'
dmsetup remove foreign && udevadm settle
module absent2 "$ABSENT"
check "absent: rc 0" [ "$(rc_of absent2)" = 0 ]
echo "  plan: $(actions "$W/absent2.json")"
checkc "absent: unmounted, dm removed" '! grep -q " /mnt/pmem " /proc/self/mountinfo && [ ! -e /dev/mapper/pmem-striped ]'
checkc "absent: state, units, links and binary removed" '[ ! -e "$STATE_A" ] && [ -z "$(ls -A "$R/etc/pmem-stack/state.d")" ] && [ ! -e "$R/etc/systemd/system/pmem-stack@.service" ] && [ -z "$(ls -A "$R/etc/systemd/system/local-fs-pre.target.wants" 2>/dev/null)" ] && [ ! -e "$R/etc/systemd/system/mnt-pmem.mount" ] && [ ! -L "$R/etc/systemd/system/local-fs.target.wants/mnt-pmem.mount" ] && [ ! -e "$R/usr/local/sbin/pmem_stack" ]'
checkc "absent: namespaces left (no allow_data_loss), with a warning" '[ "$(ns_mode pm0)" = fsdax ] && grep -q "left in place" "$W/absent2.json"'
module absent3 "$ABSENT"
checkc "a second absent run: changed false" '[ "$(rc_of absent3)" = 0 ] && [ "$(jv "$W/absent3.json" changed)" = false ]'
summary
