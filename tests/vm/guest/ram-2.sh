#!/bin/bash
# System-RAM boots, boot 2 of 2 (runs INSIDE the guest, systemd as PID 1). Nothing is run
# by hand before the checks: the stack's replay gave dax0.0 to the kernel again (kmem does
# not outlive a boot), with the auto-online policy left as the kernel has it. Then the
# module is unchanged, and the declaration is torn down on the booted host.
source "$(dirname "$0")/ram-lib.sh"
R=$(ls /etc/systemd/system/local-fs-pre.target.wants/ | grep '^pmem-stack@' | head -1)
section "what systemd did at this boot"
show "$R"
journal "the replay service" -u "$R"
daxctl list | tr -d '\n ' | sed 's/^/  daxctl list: /'; echo
echo "  auto_online_blocks: $(policy); node 1: MemTotal $(node1 MemTotal) kB"
checkc "$R: active (exited), result success" '[ "$(prop "$R" ActiveState)/$(prop "$R" SubState)/$(prop "$R" Result)" = active/exited/success ]'
checkc "dax0.0 is system RAM again, every block online, movable, node 1 has it" 's=$(dax_state) && [ "${s%% *}" = system-ram ] && [ "${s##* }" = movable ] && b=${s#* } && b=${b%% *} && [ "${b%/*}" = "${b#*/}" ] && [ "$(node1 MemTotal)" -gt 0 ]'
checkc "the auto-online policy is the kernel's, as at boot 1 ($(cat "$KEEP/policy"))" '[ "$(policy)" = "$(cat "$KEEP/policy")" ] && [ ! -e /var/lib/pmem-stack/auto_online_blocks.saved ]'
module s1 "$ARGS_R"
checkc "the module: unchanged, no process started" '[ "$(rc_of s1)" = 0 ] && [ "$(jv "$W/s1.json" changed)" = false ] && [ -z "$(spawns s1)" ]'

section "teardown on the booted host (state: absent, allow_data_loss)"
module t1 "$(with "$ARGS_R" '"state":"absent","allow_data_loss":true')"
actions "$W/t1.json" | sed 's/^/  teardown: /'
checkc "torn down: the memory taken back first, then the namespace, the boot files" '[ "$(rc_of t1)" = 0 ] && a=$(actions "$W/t1.json") && case $a in *to_devdax*destroy_namespace*) true;; *) false;; esac && [ -z "$(ndctl list -N)" ] && [ -z "$(ls /etc/pmem-stack/state.d/ 2>/dev/null)" ]'
module t2 "$(with "$ARGS_R" '"state":"absent","allow_data_loss":true')"
checkc "again: unchanged" '[ "$(rc_of t2)" = 0 ] && [ "$(jv "$W/t2.json" changed)" = false ]'
summary
