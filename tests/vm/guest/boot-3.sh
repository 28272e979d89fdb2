#!/bin/bash
# Real boots, boot 3 of 3 (runs INSIDE the guest, systemd as PID 1) with one DIMM
# removed, the one that held pm0: stack A (striped over pm0 and pm1) cannot be rebuilt,
# and the replay must not make a new pm0 in the space left (nor a filesystem over it and
# pm1). The boot goes on: A's replay fails with the reason in the journal, /mnt/a and its
# consumer are not started; stack C (pm3, beside pm0 on the DIMM removed) fails alike;
# stack B (pm2, beside pm1 on the DIMM that stays) comes up as before. The module runs
# for A and C afterwards say what is missing.
source "$(dirname "$0")/boot-lib.sh"
RA=$(replay_of mnt-a.mount); RB=$(replay_of mnt-b.mount); RC=$(replay_of mnt-c.mount)
section "what systemd did at this boot"
show "$RA" "$RB" "$RC" mnt-a.mount mnt-b.mount mnt-c.mount pmem-consumer.service local-fs.target multi-user.target
journal "the replay services" -u "$RA" -u "$RB" -u "$RC"
journal "mounts and consumer" -u mnt-a.mount -u mnt-b.mount -u mnt-c.mount -u pmem-consumer.service
journalctl -b --no-pager -o cat _PID=1 | grep -i "dependency failed" | sed 's/^/  journal: /'
echo "  systemctl is-system-running: $(systemctl is-system-running)"
systemctl --failed --no-legend --plain | sed 's/^/  failed: /'
checkc "the boot went on: multi-user.target reached" '[ "$(prop multi-user.target ActiveState)" = active ]'
checkc "$RA: failed (exit code)" '[ "$(prop "$RA" ActiveState)/$(prop "$RA" Result)" = failed/exit-code ]'
checkc "the journal says why: A's replay names the missing namespace pm0" 'journalctl -b -o cat -u "$RA" | grep "pmem_stack --boot:" | grep -q "pm0.*missing"'
checkc "$RC: failed too, naming pm3; mnt-c.mount not started" '[ "$(prop "$RC" ActiveState)" = failed ] && journalctl -b -o cat -u "$RC" | grep "pmem_stack --boot:" | grep -q "pm3" && [ "$(prop mnt-c.mount ActiveState)" != active ]'
checkc "the replay made no namespace: pm1 and pm2 only" '[ "$(ndctl list -N | python3 -c "import json,sys; d=json.load(sys.stdin); d=d if isinstance(d,list) else [d]; print(\" \".join(sorted(n.get(\"name\",\"?\") for n in d if n.get(\"size\",0))))")" = "pm1 pm2" ]'
checkc "A's replay ran no step (no namespace, no dm device, no filesystem made)" 'journalctl -b -o cat -u "$RA" | grep "^{" | python3 -c "import json,sys; r=json.loads(sys.stdin.readline()); sys.exit(0 if r[\"failed\"] and r[\"done\"] == [] else 1)"'
checkc "mnt-a.mount not started, /mnt/a not mounted" '[ "$(prop mnt-a.mount ActiveState)" != active ] && ! grep -q " /mnt/a " /proc/self/mountinfo'
checkc "the consumer never started (its dependency failed)" '[ "$(prop pmem-consumer.service ExecMainStartTimestampMonotonic)" = 0 ] && [ "$(prop pmem-consumer.service ActiveState)" != active ] && [ ! -e /run/consumer.txt ]'
checkc "the journal says the consumer's dependency failed" 'journalctl -b -o cat _PID=1 | grep -q "Dependency failed for pmem-consumer.service\|Dependency failed for A consumer of /mnt/a"'
checkc "$RB: active (exited), success: the other stack is independent" '[ "$(prop "$RB" ActiveState)/$(prop "$RB" Result)" = active/success ]'
checkc "mnt-b.mount active, /mnt/b mounted with dax=always" '[ "$(prop mnt-b.mount ActiveState)" = active ] && grep -q " /mnt/b .*dax=always" /proc/self/mountinfo'
checkc "B's data intact" '(cd /mnt/b && sha256sum -c --quiet "$KEEP/data-b.sha256")'
check "no dm device for A" [ ! -e /dev/mapper/pmem-striped ]
section "the module afterwards"
module a4 "$ARGS_A"
echo "  A: rc $(rc_of a4): $(jv "$W/a4.json" msg)"
checkc "A: fails, naming what is missing (pm0), nothing changed" '[ "$(rc_of a4)" = 1 ] && jv "$W/a4.json" msg | grep -q "pm0" && [ "$(jv "$W/a4.json" changed)" = false ]'
module c4 "$ARGS_C"
checkc "C: fails, naming pm3, nothing changed" '[ "$(rc_of c4)" = 1 ] && jv "$W/c4.json" msg | grep -q "pm3" && [ "$(jv "$W/c4.json" changed)" = false ]'
module b4 "$ARGS_B"
checkc "B: rc 0, changed false" '[ "$(rc_of b4)" = 0 ] && [ "$(jv "$W/b4.json" changed)" = false ]'
section "teardown after the loss: the tasks of the broken stacks remove their own"
STATE_B=$(ls /etc/pmem-stack/state.d/pmem-lin-*.json)
sha256sum "$STATE_B" $UNITS/mnt-b.mount > "$W/b-files.sha256"
module absa "${ARGS_A%\}},\"state\":\"absent\"}"
module absc "${ARGS_C%\}},\"state\":\"absent\"}"
echo "  A absent: rc $(rc_of absa): $(jv "$W/absa.json" msg)"; echo "  C absent: rc $(rc_of absc): $(jv "$W/absc.json" msg)"
checkc "A and C absent with a member gone: rc 0, their states, instance links and units gone" '[ "$(rc_of absa)" = 0 ] && [ "$(rc_of absc)" = 0 ] && [ "$(ls /etc/pmem-stack/state.d)" = "$(basename "$STATE_B")" ] && [ ! -e "$UNITS/mnt-a.mount" ] && [ ! -e "$UNITS/mnt-c.mount" ] && [ ! -L "$UNITS/local-fs-pre.target.wants/$RA" ] && [ ! -L "$UNITS/local-fs-pre.target.wants/$RC" ]'
checkc "B's state, unit and instance link, the template and the binary stay; /mnt/b still mounted" 'sha256sum -c --quiet "$W/b-files.sha256" && [ -L "$UNITS/local-fs-pre.target.wants/$RB" ] && [ -f "$UNITS/pmem-stack@.service" ] && [ -x "$BOOT_COPY" ] && grep -q " /mnt/b " /proc/self/mountinfo'
checkc "systemd no longer knows A's and C's mount unit files" '[ -z "$(systemctl list-unit-files --no-legend mnt-a.mount mnt-c.mount | grep -v "^$")" ]'
module absa2 "${ARGS_A%\}},\"state\":\"absent\"}"
checkc "A absent again: changed false" '[ "$(rc_of absa2)" = 0 ] && [ "$(jv "$W/absa2.json" changed)" = false ]'
section "teardown of B after this boot, where systemd mounted it: state absent, allow_data_loss"
DEV_B=$(cat "/sys/block/$(basename "$(readlink -f /dev/mapper/pmem-lin)")/dev")
echo "  the module runs in mount namespace $(readlink /proc/self/ns/mnt); PID 1 (systemd) in $(readlink /proc/1/ns/mnt)"
check "the module runs in PID 1's mount namespace" [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" ]
echo "  /mnt and /mnt/b in each namespace (shared:N = peer group, master:N = slave of it):"
copies "$DEV_B" /mnt /mnt/b | sort -u -k3,3 -k8,8 | sed 's/^/    /'
echo "  systemd-logind: $(systemctl show -p MainPID -p ProtectSystem -p ProtectHome -p PrivateTmp -p PrivateDevices -p MountFlags systemd-logind | tr '\n' ' ')"
# a process in a private mount namespace of its own (no propagation from ours: as a
# container or `unshare -m` keeps it), holding a copy of /mnt/b that only an umount in
# its namespace removes
unshare --mount --propagation private sleep 900 & HOLDER=$!
for _ in $(seq 50); do [ "$(readlink /proc/$HOLDER/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ] && grep -q " /mnt/b " /proc/$HOLDER/mountinfo && break; sleep 0.1; done
echo "  a holder in a private namespace: pid $HOLDER ($(cat /proc/$HOLDER/comm)), $(readlink /proc/$HOLDER/ns/mnt): $(grep " /mnt/b " /proc/$HOLDER/mountinfo)"
echo "  mount namespaces before the teardown (pid comm ns):"; mount_namespaces | sed 's/^/    /'
echo "  copies of /mnt/b before the teardown, one line per namespace:"
copies "$DEV_B" /mnt/b | sort -u -k3,3 | sed 's/^/    /'
checkc "before: /mnt/b is held in more than one mount namespace (systemd-logind's, the holder's)" '[ "$(copies "$DEV_B" /mnt/b | awk "{print \$3}" | sort -u | wc -l)" -gt 2 ]'
module absb "${ARGS_B%\}},\"state\":\"absent\",\"allow_data_loss\":true}"
echo "  B absent: rc $(rc_of absb): $(jv "$W/absb.json" msg)"
python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
for s in r.get("plan", []):
    if s["action"] == "umount_elsewhere": print("  planned: umount_elsewhere:", s["detail"])
for s in r.get("skipped_steps", []):
    print("  skipped:", s["step"]["action"], s["step"]["target"], "-", s["why"])
print("  operations run:", " ".join(o["op"] for o in (r.get("timing") or {}).get("operations", [])))' "$W/absb.json"
checkc "B absent: umount_elsewhere planned and run" '[ "$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(any(s[\"action\"]==\"umount_elsewhere\" for s in r[\"done\"]) and \"umount_elsewhere\" in [o[\"op\"] for o in r[\"timing\"][\"operations\"]])" "$W/absb.json")" = True ]'
echo "  programs it ran: $(spawns absb | sort | uniq -c | tr '\n' ' ')"
checkc "B absent: rc 0, changed true" '[ "$(rc_of absb)" = 0 ] && [ "$(jv "$W/absb.json" changed)" = true ]'
echo "  mount namespaces checked after the teardown (pid comm ns):"; mount_namespaces | sed 's/^/    /'
copies "$DEV_B" /mnt/b | sed 's/^/    still: /'
checkc "after: the holder still runs, in its own namespace, without the copy" 'kill -0 $HOLDER && ! grep -q " /mnt/b " /proc/$HOLDER/mountinfo'
kill $HOLDER
checkc "after: no process's mountinfo holds /mnt/b or device $DEV_B ($(ls -d /proc/[0-9]* | wc -l) processes, $(mount_namespaces | wc -l) namespaces)" '[ -z "$(copies "$DEV_B" /mnt/b)" ]'
dmsetup ls | sed 's/^/  dmsetup ls: /'
checkc "after: dmsetup ls has no pmem-lin" '! dmsetup ls | grep -q "^pmem-lin\b"'
checkc "after: namespace pm2 destroyed" '[ -z "$(ns_blk pm2)" ]'
ls -la /etc/pmem-stack/state.d "$UNITS" "$UNITS/local-fs-pre.target.wants" "$UNITS/local-fs.target.wants" 2>&1 | grep -i "pmem\|mnt-\|state.d" | sed 's/^/  left: /'
checkc "after: B's unit, its link, its instance link, the template, the saved states and the boot copy gone" '[ ! -e "$UNITS/mnt-b.mount" ] && [ ! -L "$UNITS/local-fs.target.wants/mnt-b.mount" ] && [ ! -L "$UNITS/local-fs-pre.target.wants/$RB" ] && [ ! -e "$UNITS/pmem-stack@.service" ] && [ -z "$(ls -A /etc/pmem-stack/state.d 2>/dev/null)" ] && [ ! -e "$BOOT_COPY" ]'
show mnt-b.mount systemd-logind.service
checkc "after: systemd sees mnt-b.mount inactive and knows no unit file for it" '[ "$(prop mnt-b.mount ActiveState)" = inactive ] && [ -z "$(systemctl list-unit-files --no-legend mnt-b.mount | grep -v "^$")" ]'
checkc "after: the operator's /usr/local/sbin/pmem_stack survived the persists and the teardown of the last stack" '(cd /usr/local/sbin && sha256sum -c --quiet "$KEEP/operators-own.sha256")'
module absb2 "${ARGS_B%\}},\"state\":\"absent\",\"allow_data_loss\":true}"
checkc "B absent again: rc 0, changed false" '[ "$(rc_of absb2)" = 0 ] && [ "$(jv "$W/absb2.json" changed)" = false ]'
section "B converges again on the same boot"
# its namespace is made anew, in the region left (the first DIMM's, region0 now)
ARGS_B=${ARGS_B/\"region1\"/\"region0\"}
module b5 "$ARGS_B"
echo "  plan: $(actions "$W/b5.json")"
checkc "B: rc 0, changed true, /mnt/b mounted with dax=always" '[ "$(rc_of b5)" = 0 ] && [ "$(jv "$W/b5.json" changed)" = true ] && grep -q " /mnt/b .*dax=always" /proc/self/mountinfo'
checkc "B: persisted again (saved state, units, the boot copy)" '[ -n "$(ls /etc/pmem-stack/state.d/pmem-lin-*.json 2>/dev/null)" ] && [ -f "$UNITS/mnt-b.mount" ] && [ -f "$UNITS/pmem-stack@.service" ] && [ -x "$BOOT_COPY" ]'
module b6 "$ARGS_B"
checkc "B again: rc 0, changed false, no process started" '[ "$(rc_of b6)" = 0 ] && [ "$(jv "$W/b6.json" changed)" = false ] && [ -z "$(spawns b6)" ]'
summary
