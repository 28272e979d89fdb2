#!/usr/bin/env bash
# Ansible's own checks on what the project ships, offline but for PyPI (what CI reaches):
#  1. builds the collection (scripts/build-collection.sh) into target/ansible-checks/;
#  2. `ansible-test sanity` on it, every test; ansible-test sets up a virtual environment
#     per test and bootstraps pip in it with a get-pip script it downloads from a host CI
#     cannot reach: scripts/ansible-test-get-pip.py stands in for it (see there), cached
#     under the pip version the venv's ansible-test bootstraps (24.2 for 2.19, 21.3.1 for
#     2.14); each ansible-test installs its sanity tests' requirements from PyPI;
#  3. installs the tarball, shows both modules with ansible-doc and runs
#     tests/ansible/collection-smoke.yml against this machine (changes nothing);
#  4. `ansible-lint --profile production` on playbooks/*.yml (the module from a library/
#     directory, as the VM recipes run it), on the smoke and fleet-timing playbooks and on
#     the fleet example's (examples/fleet: the collection).
# Tools come from the venvs scripts/install-deps.sh makes: by default the newest ansible-core
# with ansible-lint (target/ansible-venv); `--venv DIR` takes another one, such as the
# oldest supported ansible-core's (target/ansible-venv-2.14), where steps 1-3 run and
# ansible-lint, which that venv need not have, is skipped when missing (lint runs on the
# newest ansible-core only). ansible-test keeps its venvs and cache in
# target/ansible-test-home (its HOME); with `--venv`, output and HOME get the venv's
# ansible-core version as a suffix (target/ansible-checks-2.14, ...), so that both can run
# at once.
#
#   scripts/ansible-checks.sh [--bin BINARY] [--venv DIR]   (default: the `cargo dist` binary)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=${PMEM_STACK_ANSIBLE_VENV:-$REPO/target/ansible-venv}
OTHER_VENV=""
BIN_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN_ARGS=(--bin "$2"); shift 2 ;;
    --venv) VENV=$(cd "$2" && pwd); OTHER_VENV=1; shift 2 ;;
    *) echo "usage: $0 [--bin BINARY] [--venv DIR]" >&2; exit 2 ;;
  esac
done
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 NO_COLOR=1 LANG=C.UTF-8 LC_ALL=C.UTF-8
export PATH=$VENV/bin:$PATH   # ansible-lint runs ansible-* tools by name (and warns otherwise)
export PMEM_STACK_ANSIBLE_VENV=$VENV   # build-collection.sh's ansible-galaxy
TOOLS=(ansible-test ansible-galaxy ansible-doc ansible-playbook)
[ -n "$OTHER_VENV" ] || TOOLS+=(ansible-lint)
for tool in "${TOOLS[@]}"; do
  [ -x "$VENV/bin/$tool" ] || { echo "ansible-checks: no $tool in $VENV (run scripts/install-deps.sh)" >&2; exit 1; }
done
CORE=$("$VENV/bin/python" -c 'from ansible.release import __version__; print(__version__)')
SUFFIX=""; [ -z "$OTHER_VENV" ] || SUFFIX=-$(cut -d. -f1,2 <<<"$CORE")
OUT=$REPO/target/ansible-checks$SUFFIX
step() { echo "== ansible-checks: $*"; }
echo "ansible-checks: ansible-core $CORE from $VENV"

step "build the collection"
rm -rf "$OUT"
TARBALL=$(bash scripts/build-collection.sh "${BIN_ARGS[@]}" --out "$OUT" | tail -1)
STAGE=$OUT/ansible_collections/pmemstack/pmem
echo "$TARBALL"

step "ansible-test sanity"
# ansible-test lists a collection's files with git when it sits in a git work tree; the
# stage is inside this repository's ignored target/, so it gets a repository of its own
git -C "$STAGE" init -q
TEST_HOME=$REPO/target/ansible-test-home$SUFFIX
PIP_VERSION=$(sed -n "s/^ *pip='\([0-9.]*\)',.*/\1/p" \
  "$VENV"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -1)
[ -n "$PIP_VERSION" ] || { echo "ansible-checks: cannot tell which pip ansible-test bootstraps" >&2; exit 1; }
mkdir -p "$TEST_HOME/.ansible/test/cache"
cp scripts/ansible-test-get-pip.py "$TEST_HOME/.ansible/test/cache/get_pip_${PIP_VERSION//./_}.py"
PY=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if ! (cd "$STAGE" && HOME=$TEST_HOME "$VENV/bin/ansible-test" sanity --python "$PY" -v --color no) \
    > "$OUT/sanity.log" 2>&1; then
  grep -v '^\(Run command\|Stream command\|Execute command\)' "$OUT/sanity.log" | tail -40
  echo "ansible-checks: ansible-test sanity failed (log: $OUT/sanity.log)" >&2
  exit 1
fi
# which tests had something to check, and which had nothing of this collection to look at
awk '/^Running sanity test/ { if (t) print (na ? "n/a " : "ran ") t; t = $4; na = 0 }
     /^No tests applicable/ { na = 1 }
     END { if (t) print (na ? "n/a " : "ran ") t }' "$OUT/sanity.log" | tr -d '"' > "$OUT/sanity.summary"
echo "sanity tests passed: $(grep '^ran ' "$OUT/sanity.summary" | cut -c5- | tr '\n' ' ')"
echo "sanity tests with nothing to check here: $(grep '^n/a ' "$OUT/sanity.summary" | cut -c5- | tr '\n' ' ')"
grep -q '^ran validate-modules$' "$OUT/sanity.summary" || {
  echo "ansible-checks: validate-modules did not run" >&2; exit 1; }

step "install the collection, ansible-doc, smoke playbook"
export ANSIBLE_COLLECTIONS_PATH=$OUT/installed
"$VENV/bin/ansible-galaxy" collection install --force -p "$OUT/installed" "$TARBALL" >/dev/null
for m in pmem_stack pmem_stack_info; do
  "$VENV/bin/ansible-doc" "pmemstack.pmem.$m" > "$OUT/doc-$m.txt" 2>&1 || {
    cat "$OUT/doc-$m.txt"; echo "ansible-checks: ansible-doc pmemstack.pmem.$m failed" >&2; exit 1; }
  # its title line names the module and the sidecar it was read from; 2.19 writes
  # `> MODULE pmemstack.pmem.NAME (PATH)`, 2.14 `> PMEMSTACK.PMEM.NAME    (PATH)`
  head -1 "$OUT/doc-$m.txt" | grep -Eq \
    "^> (MODULE pmemstack\.pmem\.$m|PMEMSTACK\.PMEM\.${m^^}) +\($OUT/installed/ansible_collections/pmemstack/pmem/plugins/modules/$m\.yml\)\$" || {
    cat "$OUT/doc-$m.txt"; echo "ansible-checks: ansible-doc shows no pmemstack.pmem.$m from its sidecar" >&2; exit 1; }
  echo "ansible-doc pmemstack.pmem.$m: $(wc -l < "$OUT/doc-$m.txt") lines"
done
if ! "$VENV/bin/ansible-playbook" -i localhost, -c local tests/ansible/collection-smoke.yml \
    > "$OUT/smoke.log" 2>&1; then
  cat "$OUT/smoke.log"; echo "ansible-checks: the smoke playbook failed" >&2; exit 1
fi
grep -E '^localhost +:' "$OUT/smoke.log"

if [ ! -x "$VENV/bin/ansible-lint" ]; then
  step "ansible-lint skipped: $VENV has none; lint runs on the newest ansible-core only" \
    "(target/ansible-venv), and ansible-lint 26 needs ansible-core >= 2.16.19"
  echo "ansible-checks: all passed (ansible-core $CORE, without ansible-lint)"
  exit 0
fi
step "ansible-lint (production profile)"
# the playbooks run the module by its short name from a library/ directory, as the VM
# recipes do: the binary and its documentation, as playbooks/library holds them there
mkdir -p "$OUT/library"
cp "$STAGE/plugins/modules/pmem_stack" playbooks/library/pmem_stack.yml playbooks/library/pmem_stack_info.yml "$OUT/library/"
cp "$STAGE/plugins/modules/pmem_stack" "$OUT/library/pmem_stack_info"
(cd playbooks && ANSIBLE_LIBRARY=$OUT/library "$VENV/bin/ansible-lint" --offline --nocolor \
  --profile production ./*.yml)
"$VENV/bin/ansible-lint" --offline --nocolor --profile production tests/ansible/collection-smoke.yml \
  tests/ansible/fleet-timing.yml
# the fleet example as users keep it: its inventory (group_vars, host_vars) beside the playbooks
(cd examples/fleet && "$VENV/bin/ansible-lint" --offline --nocolor --profile production site.yml facts.yml)
echo "ansible-checks: all passed (ansible-core $CORE)"
