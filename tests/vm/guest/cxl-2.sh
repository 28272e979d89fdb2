#!/bin/bash
# CXL boots, boot 2 of 3 (runs INSIDE the guest, systemd as PID 1), with the memory
# device of serial 0x2 gone (the rig's -X 1 keeps serial 0x1 alone). Nothing is run by
# hand before the checks: the stack's replay cannot assemble cx0, fails on its own with
# the reason in the journal, makes nothing, and the boot goes on.
source "$(dirname "$0")/cxl-lib.sh"
R=$(replay_of mnt-cx.mount)
section "what systemd did at this boot, serial 0x2 missing"
show "$R" mnt-cx.mount multi-user.target
journal "the replay service" -u "$R"
cxl list -M | tr -d '\n ' | sed 's/^/  cxl list -M: /'; echo
checkc "only serial 0x1 is here" '[ "$(cxl list -M | python3 -c "import json,sys; print([m[\"serial\"] for m in json.load(sys.stdin)])")" = "[1]" ]'
checkc "$R failed, and its journal names the missing serial 0x2 and cx0" '[ "$(prop "$R" Result)" = exit-code ] && journalctl -b -u "$R" --no-pager | grep -q "(cx0): memory device(s) with serial 0x2 not found"'
checkc "mnt-cx.mount is not mounted (it requires the replay); the boot went on (multi-user.target active)" '! findmnt /mnt/cx >/dev/null && [ "$(prop multi-user.target ActiveState)" = active ]'
checkc "nothing was made: no CXL region, no namespace" 'no_cxl_region && [ -z "$(ndctl list -N)" ]'
summary
