#!/bin/bash
# Real boots, boot 1 of 3 (runs INSIDE the guest, systemd as PID 1): two, then three
# tasks each converge and persist their own stack (striped xfs over pm0+pm1 on /mnt/a;
# linear ext4 over pm2 on /mnt/b; ext4 on a GPT partition of pm3 on /mnt/c), as a playbook would on a live host: the files go to the real /etc
# and /usr/local, and the module runs systemctl daemon-reload itself. A consumer unit
# (RequiresMountsFor=/mnt/a, no default dependencies: ordered by that alone) is enabled.
# Data and checksums are written; the rig keeps the guest's writes for boot 2.
source "$(dirname "$0")/boot-lib.sh"
# fresh DIMMs are label-less (one raw namespace per region, converted only whole): give
# them labels so that a region holds two namespaces
ndctl disable-region all >/dev/null && ndctl init-labels -f all >/dev/null && ndctl enable-region all >/dev/null
section "an operator's own pmem_stack where earlier versions kept the boot copy"
mkdir -p /usr/local/sbin
printf '#!/bin/sh\necho "the operator'"'"'s own pmem_stack"\n' > /usr/local/sbin/pmem_stack
chmod 755 /usr/local/sbin/pmem_stack
(cd /usr/local/sbin && sha256sum pmem_stack) > "$KEEP/operators-own.sha256"
section "two tasks converge and persist their stacks"
module a1 "$ARGS_A"
check "A: rc 0" [ "$(rc_of a1)" = 0 ]
echo "  plan: $(actions "$W/a1.json")"
module b1 "$ARGS_B"
check "B: rc 0" [ "$(rc_of b1)" = 0 ]
echo "  plan: $(actions "$W/b1.json")"
checkc "the runs reloaded systemd themselves (systemctl daemon-reload)" 'spawns a1 | grep -q systemctl && spawns b1 | grep -q systemctl'
module a2 "$ARGS_A"; module b2 "$ARGS_B"
checkc "each task again: unchanged, no process started" '[ "$(jv "$W/a2.json" changed)" = false ] && [ -z "$(spawns a2)" ] && [ "$(jv "$W/b2.json" changed)" = false ] && [ -z "$(spawns b2)" ]'
section "a third task persists its own stack"
sha256sum /etc/pmem-stack/state.d/*.json $UNITS/mnt-a.mount $UNITS/mnt-b.mount > "$W/ab-files.sha256"
module c1 "$ARGS_C"
check "C: rc 0" [ "$(rc_of c1)" = 0 ]
echo "  plan: $(actions "$W/c1.json")"
checkc "C: A's and B's saved states and units untouched" 'sha256sum -c --quiet "$W/ab-files.sha256"'
checkc "C: three saved states" '[ "$(ls /etc/pmem-stack/state.d | wc -l)" = 3 ]'
module a3 "$ARGS_A"; module b3 "$ARGS_B"; module c2 "$ARGS_C"
checkc "each of the three again: unchanged, no process started" '[ "$(jv "$W/a3.json" changed)" = false ] && [ -z "$(spawns a3)" ] && [ "$(jv "$W/b3.json" changed)" = false ] && [ -z "$(spawns b3)" ] && [ "$(jv "$W/c2.json" changed)" = false ] && [ -z "$(spawns c2)" ]'
section "the boot copy"
grep "^ExecStart=" $UNITS/pmem-stack@.service | sed 's/^/  pmem-stack@.service: /'
checkc "the boot copy is $BOOT_COPY, byte-identical to the module, and the template runs it" 'cmp -s "$BIN" "$BOOT_COPY" && grep -q "^ExecStart=$BOOT_COPY --boot " $UNITS/pmem-stack@.service'
checkc "the operator's /usr/local/sbin/pmem_stack untouched" '(cd /usr/local/sbin && sha256sum -c --quiet "$KEEP/operators-own.sha256")'
section "what systemd has now"
RA=$(replay_of mnt-a.mount); RB=$(replay_of mnt-b.mount); RC=$(replay_of mnt-c.mount)
echo "  replay units: A $RA, B $RB, C $RC"
checkc "each mount unit requires its own replay service" '[ -n "$RA" ] && [ -n "$RB" ] && [ -n "$RC" ] && [ "$(printf "%s\n" "$RA" "$RB" "$RC" | sort -u | wc -l)" = 3 ]'
grep "^What=" $UNITS/mnt-c.mount | sed 's/^/  mnt-c.mount: /'
for u in "$RA" "$RB" "$RC" mnt-a.mount mnt-b.mount mnt-c.mount; do
  checkc "systemctl is-enabled $u: enabled" '[ "$(systemctl is-enabled "$u" 2>&1)" = enabled ]'
done
checkc "systemd sees the module's mounts as its mount units (active)" '[ "$(prop mnt-a.mount ActiveState)" = active ] && [ "$(prop mnt-b.mount ActiveState)" = active ]'
systemd-analyze verify "$UNITS/mnt-a.mount" "$UNITS/mnt-b.mount" "$UNITS/mnt-c.mount" > "$W/verify.txt" 2>&1; echo $? > "$W/verify.rc"
sed 's/^/  ! /' "$W/verify.txt"
check "systemd-analyze verify passes on the mount units" [ "$(cat "$W/verify.rc")" = 0 ]
section "a consumer ordered by RequiresMountsFor=/mnt/a alone"
cat > "$UNITS/pmem-consumer.service" <<'UNIT'
[Unit]
Description=A consumer of /mnt/a (test)
DefaultDependencies=no
RequiresMountsFor=/mnt/a

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'findmnt -n -o FSTYPE,OPTIONS /mnt/a > /run/consumer.txt; (cd /mnt/a && sha256sum data) >> /run/consumer.txt'

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
checkc "consumer enabled" 'systemctl enable pmem-consumer.service 2>&1 | sed "s/^/  /"; [ "$(systemctl is-enabled pmem-consumer.service)" = enabled ]'
section "data, and what boot 1 saw"
head -c 16M /dev/urandom > /mnt/a/data && sync
(cd /mnt/a && sha256sum data) > "$KEEP/data.sha256"
head -c 8M /dev/urandom > /mnt/b/data-b && sync
(cd /mnt/b && sha256sum data-b) > "$KEEP/data-b.sha256"
head -c 8M /dev/urandom > /mnt/c/data-c && sync
(cd /mnt/c && sha256sum data-c) > "$KEEP/data-c.sha256"
echo "pm0=$(ns_blk pm0) pm1=$(ns_blk pm1) pm2=$(ns_blk pm2) pm3=$(ns_blk pm3)" > "$KEEP/boot1.txt"
cat "$KEEP/boot1.txt"
echo "  (systemd stops the mounts at the orderly poweroff)"
summary
