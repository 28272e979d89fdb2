# Sourced by the VM suites' scripts, in the guest (through tests/vm/guest/lib.sh) and on
# the controller (tests/vm/fleet.sh): counted checks and the summary line tests/vm.rs reads.
# Gives ok/bad/check/checkc, `section`, and `summary` (prints "SUMMARY: N passed, M failed"
# and sets the exit status).
PASS=0; FAIL=0
ok()  { echo "CHECK PASS: $*"; PASS=$((PASS+1)); }
bad() { echo "CHECK FAIL: $*"; FAIL=$((FAIL+1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
# checkc DESC 'CONDITION': a compound condition (&&, |, redirections) as one string
checkc() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
# where the time goes: each section's heading says when it began (seconds since the
# script did) and how long the section before it took
SECTION_T0=$SECONDS; SECTION_AT=$SECONDS
section() {
  echo; echo "=== $* (at $((SECONDS - SECTION_T0)) s; the section before took $((SECONDS - SECTION_AT)) s)"
  SECTION_AT=$SECONDS
}
summary() {
  echo
  echo "SUMMARY: $PASS passed, $FAIL failed"
  [ "$FAIL" -eq 0 ]
}
