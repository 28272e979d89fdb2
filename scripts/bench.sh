#!/usr/bin/env bash
# The benchmark (issue 8), one command: bash scripts/bench.sh
# Builds the binary to deploy (`cargo dist`), the replay baseline and a PIE build to
# compare, installs the `ansible` package (for community.general.filesystem and
# ansible.posix.mount) next to ansible-core in the test venv, then boots the VM rig twice:
#   main:  2 NVDIMMs x 1 GiB, the striped-xfs stack: converge (share of time outside
#          external tools), no-op and --check medians, the replay of just the reads a
#          no-op makes, the no-op with 16 unrelated block devices present (loop devices
#          with content) against the same without them, Ansible's Python modules run
#          directly, and ansible-playbook
#   scale: 8 NVDIMMs x 512 MiB, 1..16 striped ext4 stacks (32 namespaces, 16 dm devices
#          at the end): no-op time and peak memory per size, with a linear fit
#   fleet: tests/vm/fleet.sh, ansible-playbook over SSH against two guests at once; its
#          profile_tasks timing of the converged pmem_stack task against ansible.builtin.ping
# Results: target/bench/{main,scale}.json, fleet.log and the guest logs next to them.
# Environment: BENCH_N (no-op runs per measurement, default 101 main / 31 scale),
# BENCH_N_PY (Python module runs, 11), BENCH_N_PLAYBOOK (playbook runs, 5),
# BENCH_ONLY=main|scale|fleet|foreign (foreign: only the no-op with and without 16 unrelated
# block devices, in its own 2-DIMM boot; it is also part of main),
# BENCH_BASELINE=/path/to/old/pmem_stack (built with `cargo dist` too): main and scale also
# measure it in the same boot (each converge made by both from the same state, the no-op
# runs of both alternating), and the report shows both side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
VENV=${PMEM_STACK_ANSIBLE_VENV:-$PWD/target/ansible-venv}
ANSIBLE=12.3.0   # ships community.general and ansible.posix; needs ansible-core 2.19
if [ "${BENCH_ONLY:-}" = foreign ] || [ "${BENCH_ONLY:-}" = fleet ]; then
  # the deployed binary is enough
  cargo dist --locked --quiet --bin pmem_stack
else
  if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('ansible') == '$ANSIBLE'" 2>/dev/null; then
    echo "bench: the ansible $ANSIBLE package into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "ansible==$ANSIBLE"
  fi
  # the binary operators deploy (static, fixed address: .cargo/config.toml), the replay
  # built the same way, and for comparison the same code as a dynamically linked PIE
  cargo dist --locked --quiet --bin pmem_stack --example read_replay
  cargo build --release --locked --quiet --bin pmem_stack
fi
OUT=$PWD/target/bench
mkdir -p "$OUT"
DIST=$PWD/target/x86_64-unknown-linux-gnu/release
ENVS=(env PMEM_STACK_BIN="$DIST/pmem_stack" PMEM_STACK_BIN_PIE="$PWD/target/release/pmem_stack"
      REPLAY="$DIST/examples/read_replay" VENV="$VENV")
for k in BENCH_N BENCH_N_PY BENCH_N_PLAYBOOK; do [ -n "${!k:-}" ] && ENVS+=("$k=${!k}"); done
if [ -n "${BENCH_BASELINE:-}" ]; then
  # the guest sees the host's filesystem read-only at the same paths
  BASELINE=$(realpath "$BENCH_BASELINE")
  [ -x "$BASELINE" ] || { echo "bench: BENCH_BASELINE=$BENCH_BASELINE is not an executable" >&2; exit 2; }
  ENVS+=("PMEM_STACK_BIN_BASELINE=$BASELINE")
fi
echo "bench: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r) host; guest: QEMU TCG, Debian's kernel"
if [ "${BENCH_ONLY:-main}" = main ] || [ -z "${BENCH_ONLY:-}" ]; then
  bash tests/vm/run-guest.sh -n 2 -s 1024 -m 1G -t 3000 -w "$OUT" -- \
    "${ENVS[@]}" bash tests/vm/guest/bench.sh main "$OUT/main.json" | tee "$OUT/main.log"
fi
if [ "${BENCH_ONLY:-scale}" = scale ] || [ -z "${BENCH_ONLY:-}" ]; then
  bash tests/vm/run-guest.sh -n 8 -s 512 -m 1G -t 3000 -w "$OUT" -- \
    "${ENVS[@]}" bash tests/vm/guest/bench.sh scale "$OUT/scale.json" | tee "$OUT/scale.log"
fi
if [ "${BENCH_ONLY:-fleet}" = fleet ] || [ -z "${BENCH_ONLY:-}" ]; then
  PMEM_STACK_BIN="$DIST/pmem_stack" PMEM_STACK_ANSIBLE_VENV="$VENV" bash tests/vm/fleet.sh | tee "$OUT/fleet.log"
fi
if [ "${BENCH_ONLY:-}" = foreign ]; then
  bash tests/vm/run-guest.sh -n 2 -s 1024 -m 1G -t 3000 -w "$OUT" -- \
    "${ENVS[@]}" bash tests/vm/guest/bench.sh foreign "$OUT/foreign.json" | tee "$OUT/foreign.log"
fi
python3 scripts/bench-report.py "$OUT"
