#!/usr/bin/env bash
# The demo: boot Debian's kernel in QEMU with two emulated 1 GiB NVDIMMs (fresh, label-
# less) and run the striped recipe through pmem_stack: the plan (check mode), the first
# run (changed), the second run (unchanged), and the DAX check (mountinfo dax=always and
# STATX_ATTR_DAX on a file). Needs scripts/install-deps.sh to have run (the test command does).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v qemu-system-x86_64 >/dev/null || bash scripts/install-deps.sh
cargo dist --locked --quiet --bin pmem_stack
exec bash tests/vm/run-guest.sh -n 2 -s 1024 -m 768M -t 900 -- \
  env PMEM_STACK_BIN="$PWD/target/x86_64-unknown-linux-gnu/release/pmem_stack" bash tests/vm/guest/demo.sh
