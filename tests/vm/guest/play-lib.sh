# Sourced after lib.sh by the guest suites that run Ansible (ansible-core from PyPI in
# target/ansible-venv): pmem_stack and pmem_stack_info (the same binary) from a library
# directory, and `play NAME [ansible-playbook args]`, which runs playbooks/$PLAYBOOK on
# this host (output in $W/NAME.log, rc in $W/NAME.rc); `recap NAME KEY` reads its recap.
REPO=$(cd "$HERE/../../.." && pwd)
VENV=${PMEM_STACK_ANSIBLE_VENV:-$REPO/target/ansible-venv}
export LANG=C.UTF-8 LC_ALL=C.UTF-8 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_LIBRARY="$W/library" ANSIBLE_HOST_KEY_CHECKING=0 ANSIBLE_RETRY_FILES_ENABLED=0
mkdir -p "$W/library" && cp "$BIN" "$W/library/pmem_stack" && cp "$REPO/playbooks/library/pmem_stack.yml" "$W/library/"
cp "$BIN" "$W/library/pmem_stack_info" && cp "$REPO/playbooks/library/pmem_stack_info.yml" "$W/library/"
command -v sudo >/dev/null || BECOME=(-e ansible_become=false)
play() {
  local name=$1; shift
  "$VENV/bin/ansible-playbook" -i localhost, -c local "${BECOME[@]}" "$@" "$REPO/playbooks/$PLAYBOOK" > "$W/$name.log" 2>&1
  echo $? > "$W/$name.rc"
  echo "  [$name] rc=$(cat "$W/$name.rc") $(grep -E '^localhost +:' "$W/$name.log")"
}
recap() { grep -E '^localhost +:' "$W/$1.log" | grep -o "$2=[0-9]*" | cut -d= -f2; }
