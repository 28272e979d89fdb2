#!/bin/bash
# VM suite: the module SIGKILLed in the middle of a step, swept over the whole converge,
# from fresh DIMMs and over a torn-down stack's leftovers (tests/vm/guest/kills.py).
source "$(dirname "$0")/lib.sh"
export W PMEM_STACK_BIN="$BIN"
exec python3 "$HERE/kills.py"
