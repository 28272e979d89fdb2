#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install what tests need, check format and
# lints, then run every test (unit, scenario, CLI, and the VM suite that boots Debian's
# kernel with emulated NVDIMMs in QEMU). Nothing is skipped in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/install-deps.sh
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo build --locked
# the VM suites run the binary operators deploy: static, built by `cargo dist`
cargo dist --locked --bin pmem_stack
PMEM_STACK_TEST_BIN=$PWD/target/x86_64-unknown-linux-gnu/release/pmem_stack \
  cargo test --locked -- --test-threads=2
echo "scripts/test.sh: all tests passed in $(( $(date +%s) - start )) s"
