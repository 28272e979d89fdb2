# Sourced by the guest scripts (they run INSIDE the VM as root, with udev running).
# Gives: the counted checks and `summary` of tests/vm/checks.sh, `module NAME JSON` (runs
# pmem_stack, keeps its result), `jv FILE PATH` (JSON value), and `spawns FILE`
# (processes a run started, from strace).
set -u
BIN=${PMEM_STACK_BIN:?set PMEM_STACK_BIN to the pmem_stack binary}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=${W:-/tmp/pmem-stack-vm}
rm -rf "$W"; mkdir -p "$W"
source "$HERE/../checks.sh"
jv() { python3 -I -S "$HERE/j.py" "$@"; }
actions() { python3 -I -S "$HERE/j.py" actions "$1"; }

# module NAME JSON: run the module with JSON in an args file (as Ansible does), under
# strace to record every process it starts; result in $W/NAME.json, rc in $W/NAME.rc.
module() {
  local name=$1 json=$2
  printf '%s' "$json" > "$W/$name.args"
  rm -f "$W/$name.trace"
  local t0=${EPOCHREALTIME/./}
  strace -f --seccomp-bpf -qq -e trace=execve -e signal=none -o "$W/$name.trace" "$BIN" "$W/$name.args" > "$W/$name.json" 2> "$W/$name.err"
  local rc=$?
  echo "  [$name] took $(( (${EPOCHREALTIME/./} - t0) / 1000 )) ms (under strace)"
  echo "$rc" > "$W/$name.rc"
  # one python for both lines (a python start costs about half a second under TCG)
  python3 -I -S - "$W/$name.json" "$name" "$rc" <<'PY' 2>/dev/null || echo "  [$name] rc=$rc: no JSON result"
import json, sys
r = json.load(open(sys.argv[1]))
print("  [%s] rc=%s changed=%s plan=%s" % (sys.argv[2], sys.argv[3], json.dumps(r.get("changed")),
      ", ".join("%s %s" % (s["action"], s["target"]) for s in r.get("plan", []))))
m = r.get("msg"); print("  [%s] msg: %s" % (sys.argv[2], m if isinstance(m, str) else json.dumps(m)))
PY
  return 0
}
# module_stdin NAME JSON: same arguments through stdin (Salt/Puppet wrappers)
module_stdin() {
  local name=$1 json=$2
  printf '%s' "$json" | "$BIN" > "$W/$name.json" 2> "$W/$name.err"
  echo $? > "$W/$name.rc"
}
rc_of() { cat "$W/$1.rc"; }
# with JSON 'KEYS': the arguments JSON with more top-level keys
with() { printf '%s' "${1%\}},$2}"; }
# programs a run started, other than the module itself (one per line). The trace must
# exist and show the module's own execve succeeding; else a line saying so is printed,
# so that a check for "no process started" (an empty list) fails.
spawns() {
  local t="$W/$1.trace"
  if [ ! -s "$t" ] || ! grep -F "execve(\"$BIN\", " "$t" | grep -q ' = 0$'; then
    echo "(no trace of the module's own run in $t)"
    return 0
  fi
  grep -o 'execve("[^"]*"' "$t" | sed 's/execve("//; s/"$//' | grep -v -x -F "$BIN" || true
}
facts() { "$BIN" --facts > "$W/$1.json"; }
# the live table of a dm device, one line
dmtable() { dmsetup table "$1" 2>/dev/null | tr '\n' '|' | sed 's/|$//'; }
# block device (pmemN) of the namespace named $1
ns_blk() { ndctl list -N | python3 -c "import json,sys; d=json.load(sys.stdin); d=d if isinstance(d,list) else [d]; print(([n.get('blockdev','') for n in d if n.get('name')=='$1'] or [''])[0])"; }
# mode (fsdax/devdax/...) of the namespace named $1, from ndctl's JSON
ns_mode() { ndctl list -N | python3 -c "import json,sys; d=json.load(sys.stdin); d=d if isinstance(d,list) else [d]; print([n.get('mode','') for n in d if n.get('name')=='$1'][0])"; }
devno() { cat "/sys/block/$1/dev"; }
size_of() { cat "/sys/block/$1/size"; }
for m in nfit nd_e820 nd_pmem nd_btt dax_pmem dm-mod dm-linear dm-striped ext4 xfs; do modprobe -q "$m" 2>/dev/null || true; done
udevadm settle 2>/dev/null || true
