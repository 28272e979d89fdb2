#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install what tests need, check format and
# lints, then run every test (unit, scenario, CLI, and the VM suite that boots Debian's
# kernel with emulated NVDIMMs in QEMU). Nothing is skipped in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# what the tests report past the harness (tests/common/report.rs): each VM suite's time
# and every skipped suite, printed at the end, pass or fail
rm -rf target/test-report
report() {
  local rc=$?
  if [ -s target/test-report/vm-times ]; then
    echo "scripts/test.sh: VM suites, longest first (seconds in the VM):"
    sort -rn target/test-report/vm-times
  fi
  echo "scripts/test.sh: $(cat target/test-report/skipped 2>/dev/null | wc -l) tests skipped"
  [ -s target/test-report/skipped ] && sed 's/^/  SKIPPED /' target/test-report/skipped
  return $rc
}
trap report EXIT
bash scripts/install-deps.sh
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo build --locked
# the VM suites run the binary operators deploy: static, built by `cargo dist`
cargo dist --locked --bin pmem_stack
PMEM_STACK_TEST_BIN=$PWD/target/x86_64-unknown-linux-gnu/release/pmem_stack \
  cargo test --locked -- --test-threads=2
echo "scripts/test.sh: all tests passed in $(( $(date +%s) - start )) s"
