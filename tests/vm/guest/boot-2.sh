#!/bin/bash
# Real boots, boot 2 of 3 (runs INSIDE the guest, systemd as PID 1), the DIMMs enumerated
# in reverse (pm0 no longer on /dev/pmem0). Nothing is run by hand before the checks: the
# installed units ran by themselves. Read from systemd (unit states, timestamps, the
# journal): each replay service succeeded before its mount, each mount was up before
# local-fs.target, the consumer started after /mnt/a was mounted with DAX and saw the data;
# the dm devices have their members in declared order; the data is intact; each task's
# module run reports changed false.
source "$(dirname "$0")/boot-lib.sh"
RA=$(replay_of mnt-a.mount); RB=$(replay_of mnt-b.mount); RC=$(replay_of mnt-c.mount)
section "what systemd did at this boot"
show "$RA" "$RB" "$RC" mnt-a.mount mnt-b.mount mnt-c.mount pmem-consumer.service local-fs.target
journal "the replay services" -u "$RA" -u "$RB" -u "$RC"
journal "mounts and consumer" -u mnt-a.mount -u mnt-b.mount -u mnt-c.mount -u pmem-consumer.service
echo "  systemctl is-system-running: $(systemctl is-system-running)"
systemctl --failed --no-legend --plain | sed 's/^/  failed: /'
for r in "$RA" "$RB" "$RC"; do
  checkc "$r: active (exited), result success, status 0" '[ "$(prop "$r" ActiveState)/$(prop "$r" SubState)/$(prop "$r" Result)/$(prop "$r" ExecMainStatus)" = active/exited/success/0 ]'
done
checkc "the replays logged their one line each in the journal" '[ "$(journalctl -b -o cat -u "$RA" -u "$RB" -u "$RC" | grep -c "pmem_stack --boot:")" = 3 ]'
for m in mnt-a.mount mnt-b.mount mnt-c.mount; do
  checkc "$m: active (mounted), result success" '[ "$(prop $m ActiveState)/$(prop $m SubState)/$(prop $m Result)" = active/mounted/success ]'
done
LF=$(prop local-fs.target ActiveEnterTimestampMonotonic)
for p in "$RA mnt-a.mount" "$RB mnt-b.mount" "$RC mnt-c.mount"; do
  set -- $p
  X=$(prop "$1" ExecMainExitTimestampMonotonic); M=$(prop "$2" ActiveEnterTimestampMonotonic)
  echo "  $1 exited at $X us, $2 active at $M us, local-fs.target at $LF us"
  checkc "$2: mounted after $1 ended and before local-fs.target was reached" '[ "$X" -gt 0 ] && [ "$X" -le "$M" ] && [ "$M" -le "$LF" ]'
done
C=$(prop pmem-consumer.service ExecMainStartTimestampMonotonic); MA=$(prop mnt-a.mount ActiveEnterTimestampMonotonic)
echo "  consumer started at $C us; it saw: $(tr '\n' ' ' < /run/consumer.txt 2>/dev/null)"
checkc "the consumer (RequiresMountsFor=/mnt/a) started only after /mnt/a was mounted" '[ "$(prop pmem-consumer.service Result)" = success ] && [ "$C" -ge "$MA" ] && [ "$MA" -gt 0 ]'
checkc "the consumer saw xfs with dax=always and the intact data" 'head -1 /run/consumer.txt | grep -q "^xfs .*dax=always" && [ "$(sed -n 2p /run/consumer.txt)" = "$(cat "$KEEP/data.sha256")" ]'
section "the stacks"
cat "$KEEP/boot1.txt"
echo "now: pm0=$(ns_blk pm0) pm1=$(ns_blk pm1) pm2=$(ns_blk pm2)"
checkc "the DIMMs are enumerated the other way: pm0 (found by name) is not on the same /dev/pmemN" '[ -n "$(ns_blk pm0)" ] && ! grep -q "^pm0=$(ns_blk pm0) " "$KEEP/boot1.txt"'
P0=$(ns_blk pm0); P1=$(ns_blk pm1); S0=$(size_of "$P0"); S1=$(size_of "$P1"); MIN=$(( S0 < S1 ? S0 : S1 ))
WANT="0 $(( 2 * (MIN / 4096) * 4096 )) striped 2 4096 $(devno "$P0") 0 $(devno "$P1") 0"
echo "  table: $(dmtable pmem-striped)"; echo "  want:  $WANT"
check "A: striped table with pm0 first, pm1 second (by name), chunk 2 MiB" [ "$(dmtable pmem-striped)" = "$WANT" ]
MSK=$(cat "/sys/block/$(basename "$(readlink -f /dev/mapper/pmem-striped)")/queue/max_sectors_kb")
echo "  A's striped device: queue/max_sectors_kb $MSK (a striped device made by hand gets 1280 on 6.1)"
check "A: the boot replay raised queue/max_sectors_kb to the 2 MiB chunk" [ "$MSK" -ge 2048 ]
checkc "B: linear table over pm2" '[ "$(dmtable pmem-lin)" = "0 $(size_of "$(ns_blk pm2)") linear $(devno "$(ns_blk pm2)") 0" ]'
grep -E " /mnt/(a|b|c) " /proc/self/mountinfo | sed 's/^/  mountinfo: /'
checkc "/mnt/a, /mnt/b and /mnt/c mounted with dax=always" 'grep -q " /mnt/a .*dax=always" /proc/self/mountinfo && grep -q " /mnt/b .*dax=always" /proc/self/mountinfo && grep -q " /mnt/c .*dax=always" /proc/self/mountinfo'
A=$(xfs_io -c 'statx -r' /mnt/a/data | sed -n 's/^stat.attributes = //p')
checkc "A's data file has STATX_ATTR_DAX" '[ -n "$A" ] && [ $(( A & 0x200000 )) -ne 0 ]'
checkc "data intact on all three (sha256)" '(cd /mnt/a && sha256sum -c --quiet "$KEEP/data.sha256") && (cd /mnt/b && sha256sum -c --quiet "$KEEP/data-b.sha256") && (cd /mnt/c && sha256sum -c --quiet "$KEEP/data-c.sha256")'
section "each task after the boot"
module a3 "$ARGS_A"; module b3 "$ARGS_B"; module c3 "$ARGS_C"
checkc "A: rc 0, changed false" '[ "$(rc_of a3)" = 0 ] && [ "$(jv "$W/a3.json" changed)" = false ]'
checkc "B: rc 0, changed false" '[ "$(rc_of b3)" = 0 ] && [ "$(jv "$W/b3.json" changed)" = false ]'
checkc "C: rc 0, changed false" '[ "$(rc_of c3)" = 0 ] && [ "$(jv "$W/c3.json" changed)" = false ]'
summary
