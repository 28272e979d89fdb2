#!/bin/bash
# VM suite 5 (runs INSIDE the guest, 3 DIMMs of 1 GiB): crash at every step, failing
# steps, data safety, and objects not declared.
# 1. A foreign namespace (region2) and a foreign dm device over it, made by hand and never
#    declared: their identity (ndctl JSON, dm table, first MiB) must survive everything.
# 2. For the striped-xfs and the partitioned-ext4 recipes (both with boot persistence
#    under PMEM_STACK_ROOT): n = the check-mode plan length from a clean state; for each
#    k in 1..n the module SIGKILLs itself after its k-th mutating step
#    (PMEM_STACK_TEST_CRASH_AFTER); then: no stray dm device, no half-written file; a
#    re-run converges with changed = (k < n) and plans exactly the n - k steps left (each
#    done or skipped); a third run is unchanged; back to clean (absent +
#    allow_data_loss, which destroys the namespaces: the next crash point re-creates them
#    at the same place, over this one's superblocks and GPT, which the module must clear).
#    k = n - 1 is the last unit file written with the daemon-reload after it still to do.
# 3. Failing steps: a missing tool (ndctl not on PATH), mkfs failing (bad mkfs_options),
#    a namespace larger than its region and a full region: the result names the failed
#    step, its argv, exit status and stderr, and what was done before it.
# 4. Data safety on a converged striped xfs holding a checksummed file (open): every
#    destructive change is refused without allow_data_loss and the data stays intact and
#    mounted; a busy mount is not unmounted; absent keeps the namespaces and a re-run
#    finds the xfs again (mkfs skipped) with the data.
# 5. Crash recovery over the content of a destroyed namespace (ndctl does not clear a
#    namespace it re-creates at the same place): the partition recipe crashed right after
#    its namespace, over the striped xfs of section 4; the re-run must converge.
# 6. Raw data (random, no signature, checksummed) written straight to a striped and a
#    linear dm device: chunk 2M -> 1M and reordered members are refused without
#    allow_data_loss (message, table, checksum); a linear device grown by appending a
#    namespace made in the same run is not (first member's data intact); with
#    allow_data_loss the chunk change runs, destructive, and the data did move.
# Prints the number of crash points tried, faults injected and data-safety rules checked.
source "$(dirname "$0")/lib.sh"
# the same program without its debug info, in RAM: with boot persistence every probe
# compares the installed copy with /proc/self/exe, which for the 40+ MB debug build is
# most of the time of a run under TCG (spawns() excludes $BIN by name: it follows)
strip -o /run/pmem_stack "$BIN" && BIN=/run/pmem_stack
export PMEM_STACK_ROOT=$W/root
R=$PMEM_STACK_ROOT
T_START=$(date +%s)
CRASHES=0; FAULTS=0; RULES=0

NSJ='"namespaces":[{"name":"pm0","region":"region0","mode":"fsdax"},{"name":"pm1","region":"region1","mode":"fsdax"}]'
DEVJ='"devices":[{"name":"pmem-striped","target":"striped","members":["pm0","pm1"],"chunk":"2M"}]'
FSJ='"filesystems":[{"device":"pmem-striped","type":"xfs","label":"pmemfs"}]'
MNTJ='"mounts":[{"path":"/mnt/pmem","device":"pmem-striped","dax":"always","options":["noatime"]}]'
BOOTJ='"boot":{"persist":true}'
STRIPED="{$NSJ,$DEVJ,$FSJ,$MNTJ,$BOOTJ}"
PART='{"namespaces":[{"name":"pm0","region":"region0","mode":"fsdax"}],"partitions":[{"name":"pmemdata","disk":"pm0","start":"2M"}],"filesystems":[{"device":"pmemdata","type":"ext4"}],"mounts":[{"path":"/mnt/pmemdata","device":"pmemdata","dax":"always"}],"boot":{"persist":true}}'
CHECKMODE='"_ansible_check_mode":true'
ABSENT='"state":"absent"'
DESTROY='"state":"absent","allow_data_loss":true'

# run NAME JSON [VAR=value...]: the module (no strace: it slows every syscall under TCG)
# with extra environment; result in $W/NAME.json, rc in $W/NAME.rc
run() { local name=$1 json=$2; shift 2; invoke "$name" "$json" env "$@" "$BIN"; }
# traced NAME JSON: the same under strace (execve only, seccomp-filtered), so `spawns NAME` works
traced() {
  invoke "$1" "$2" strace -f --seccomp-bpf -qq -e trace=execve -e signal=none -o "$W/$1.trace" "$BIN"
}
# invoke NAME JSON COMMAND...: COMMAND ARGS-FILE, then print what the result says
invoke() {
  local name=$1 json=$2; shift 2
  printf '%s' "$json" > "$W/$name.args"
  local t0=$SECONDS
  "$@" "$W/$name.args" > "$W/$name.json" 2> "$W/$name.err"
  echo $? > "$W/$name.rc"
  st "$name"
  echo "  [$name] rc=$(rc_of "$name") changed=$CH plan=$NP done=$ND skipped=$NS ($ACTS) $((SECONDS - t0)) s"
  [ "$FA" = true ] && echo "  [$name] msg: $(jv "$W/$name.json" msg)"
  return 0
}
# crash NAME JSON K: run with PMEM_STACK_TEST_CRASH_AFTER=K
crash() {
  printf '%s' "$2" > "$W/$1.args"
  local t0=$SECONDS
  { env PMEM_STACK_TEST_CRASH_AFTER="$3" "$BIN" "$W/$1.args" > "$W/$1.json" 2> "$W/$1.err"; echo $? > "$W/$1.rc"; } 2>/dev/null
  echo "  [$1] rc=$(rc_of "$1") $((SECONDS - t0)) s"
}
# One python for every JSON question (a python start costs ~0.5 s under TCG): a
# coprocess answering one line per request ("\n" in answers is escaped).
QPY='
import json, subprocess, sys
sys.path.insert(0, sys.argv[1])
from j import get, show
def load(f):
    try:
        return json.load(open(f))
    except Exception:
        return None
def acts(items):
    return ",".join(s["action"] for s in items or [])
for line in sys.stdin:
    cmd, *a = line.rstrip("\n").split("\t")
    try:
        if cmd == "ns":
            out = subprocess.run(["ndctl", "list", "-N"], capture_output=True, text=True).stdout
            d = json.loads(out or "[]")
            d = d if isinstance(d, list) else [d]
            out = next((str(n.get(a[1], "")) for n in d if n.get("name") == a[0]), "")
        else:
            d = load(a[0])
            if cmd == "valid":
                out = "yes" if d is not None else "no"
            elif d is None:
                out = "nojson"
            elif cmd == "stats":
                out = " ".join([str(d["changed"]).lower(), str(d["failed"]).lower(),
                                str(len(d["plan"])), str(len(d["done"])),
                                str(len(d.get("skipped_steps", []))), acts(d["plan"]) or "-"])
            elif cmd == "get":
                out = show(get(d, a[1]))
            elif cmd == "acts":
                out = acts(d.get(a[1]))
            elif cmd == "skipped":
                out = "; ".join(s["step"]["action"] + ": " + s["why"] for s in d.get("skipped_steps", []))
            else:
                out = "unknown request " + cmd
    except Exception as e:
        out = "ERROR %r" % e
    sys.stdout.write(out.replace("\n", "\\n") + "\n")
    sys.stdout.flush()
'
coproc QJ { exec python3 -u -c "$QPY" "$HERE"; }
trap 'kill "$QJ_PID" 2>/dev/null' EXIT
q() { local IFS=$'\t' r=""; printf '%s\n' "$*" >&"${QJ[1]}"; IFS= read -r r <&"${QJ[0]}"; printf '%s\n' "$r"; }
# the lib's helpers of the same names, through the coprocess
jv() { q get "$1" "$2"; }
ns_blk() { q ns "$1" blockdev; }
ns_mode() { q ns "$1" mode; }
# st NAME: CH FA NP ND NS (changed, failed, plan/done/skipped counts) and ACTS (plan actions)
st() { read -r CH FA NP ND NS ACTS <<< "$(q stats "$W/$1.json")"; }
# acts NAME KEY: the actions of done / plan, comma-separated
acts() { q acts "$W/$1.json" "$2"; }
msg_of() { jv "$W/$1.json" msg; }
ns_names() { ndctl list -N 2>/dev/null | grep -o '"name":"[^"]*"' | cut -d'"' -f4 | sort | tr '\n' ' '; }
# dm devices other than the allowed names/globs and foreign-dm
stray_dm() {
  local n p ok
  for n in $(dmsetup ls 2>/dev/null | awk 'NF == 2 {print $1}'); do
    ok=0
    for p in foreign-dm "$@"; do
      # shellcheck disable=SC2254
      case $n in $p) ok=1;; esac
    done
    [ $ok = 1 ] || printf '%s ' "$n"
  done
}
# temp files of atomic writes left behind, or a managed file that is not whole
half_written() {
  find "$R" -name '.*.pmem-stack.*' 2>/dev/null | tr '\n' ' '
  local st
  for st in "$R"/etc/pmem-stack/state.d/*.json; do
    if [ -f "$st" ] && [ "$(q valid "$st")" != yes ]; then
      printf '%s is not whole JSON ' "${st#"$R"}"
    fi
  done
  if [ -f "$R/usr/local/libexec/pmem-stack/pmem_stack" ] && ! cmp -s "$BIN" "$R/usr/local/libexec/pmem-stack/pmem_stack"; then
    printf 'the installed binary is not whole '
  fi
}
managed_files() { find "$R" \( -type f -o -type l \) 2>/dev/null | tr '\n' ' '; }

section "foreign objects, made by hand on region2 and never declared"
ndctl create-namespace -f -e namespace2.0 --mode=fsdax --name=foreign > /dev/null
udevadm settle
FP=$(ns_blk foreign)
dmsetup create foreign-dm --table "0 $(size_of "$FP") linear /dev/$FP 0"
udevadm settle
head -c 1M /dev/urandom > "$W/foreign.bin"
dd if="$W/foreign.bin" of=/dev/mapper/foreign-dm bs=1M conv=fsync status=none
foreign_id() {
  ndctl list -N -r region2
  dmsetup table foreign-dm
  dmsetup info -c --noheadings -o name,major,minor,attr,open,segments,uuid foreign-dm
  dd if=/dev/mapper/foreign-dm bs=1M count=1 iflag=direct status=none | sha256sum
}
foreign_id > "$W/foreign.id"
sed 's/^/  | /' "$W/foreign.id" | grep -v '^  | *[]{}[]*$' | head -20
check "foreign: namespace 'foreign' in region2 (fsdax) and dm device foreign-dm over /dev/$FP" [ "$(ns_mode foreign)" = fsdax ]
check_foreign() {
  foreign_id > "$W/foreign.now"
  if cmp -s "$W/foreign.id" "$W/foreign.now"; then ok "foreign namespace and foreign-dm unchanged ($1)"
  else bad "foreign namespace and foreign-dm unchanged ($1)"; diff "$W/foreign.id" "$W/foreign.now" | head; fi
}

# crash_loop TAG ARGS DM-GLOBS...: crash after every step of a recipe
crash_loop() {
  local tag=$1 args=$2; shift 2
  local allowed=("$@")
  section "crash at every step: $tag"
  run "$tag.plan" "$(with "$args" "$CHECKMODE")"
  local n=$NP k want stray half
  check "$tag: check mode from the clean state plans $n steps" [ "$n" -gt 0 ]
  for k in $(seq 1 "$n"); do
    echo "--- $tag: crash after step $k of $n"
    crash "$tag.k$k" "$args" "$k"
    CRASHES=$((CRASHES + 1))
    checkc "$tag k=$k: killed by SIGKILL right after step $k (rc 137, no JSON)" '[ "$(rc_of "$tag.k$k")" = 137 ] && [ ! -s "$W/$tag.k$k.json" ]'
    stray=$(stray_dm "${allowed[@]}")
    check "$tag k=$k: no stray dm device${stray:+ (found: $stray)}" [ -z "$stray" ]
    half=$(half_written)
    check "$tag k=$k: no half-written file${half:+ (found: $half)}" [ -z "$half" ]
    run "$tag.re$k" "$args"
    want=false; [ "$k" -lt "$n" ] && want=true
    checkc "$tag k=$k: the re-run converges (rc 0) and reports changed=$want" '[ "$(rc_of "$tag.re$k")" = 0 ] && [ "$CH" = "$want" ]'
    checkc "$tag k=$k: the re-run plans the $((n - k)) steps left, each done or skipped ($ND done + $NS skipped of $NP)" '[ "$NP" = $((n - k)) ] && [ $((ND + NS)) = "$NP" ]'
    run "$tag.again$k" "$args"
    checkc "$tag k=$k: a third run is unchanged" '[ "$(rc_of "$tag.again$k")" = 0 ] && [ "$CH" = false ]'
    # back to clean, leaving what the namespaces hold in place
    run "$tag.destroy$k" "$(with "$args" "$DESTROY")"
    checkc "$tag k=$k: torn down by absent + allow_data_loss (rc 0; no namespace, dm device or boot file left)" \
      '[ "$(rc_of "$tag.destroy$k")" = 0 ] && [ "$(ns_names)" = "foreign " ] && [ -z "$(stray_dm)" ] && [ -z "$(managed_files)" ]'
  done
  check_foreign "after the $tag crash points"
}

crash_loop striped "$STRIPED" pmem-striped
crash_loop partition "$PART"

section "fault: a PATH without the tools (as Ansible's on RHEL may lack /usr/sbin)"
facts fp.before
run fp "$STRIPED" PATH=/nonexistent
checkc "short PATH: the stack converges (ndctl, mkfs.xfs, udevadm found in the standard sbin and bin directories)" '[ "$(rc_of fp)" = 0 ] && [ "$CH" = true ] && [ "$ND" -gt 0 ]'
run fp.again "$STRIPED" PATH=/nonexistent
checkc "short PATH: the next run is unchanged" '[ "$(rc_of fp.again)" = 0 ] && [ "$CH" = false ]'
run fp.destroy "$(with "$STRIPED" "$DESTROY")" PATH=/nonexistent
checkc "short PATH: torn down again (no namespace, dm device or boot file left)" \
  '[ "$(rc_of fp.destroy)" = 0 ] && [ "$(ns_names)" = "foreign " ] && [ -z "$(stray_dm)" ] && [ -z "$(managed_files)" ]'

section "fault: a missing tool (ndctl hidden from PATH and from the standard directories)"
facts fa.before
# a short PATH no longer hides a tool: hide the file itself (a character device is not
# an executable file) in a mount namespace of the module's own
HIDE='for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do if [ -e "$d/ndctl" ]; then mount --bind /dev/null "$d/ndctl" || exit 99; fi; done; exec "$0" "$@"'
invoke fa "$STRIPED" unshare --mount --propagation private -- sh -c "$HIDE" env PATH=/nonexistent "$BIN"
facts fa.after
FAULTS=$((FAULTS + 1))
checkc "missing tool: failed (rc 1), changed false, done empty" '[ "$(rc_of fa)" = 1 ] && [ "$FA" = true ] && [ "$CH" = false ] && [ "$ND" = 0 ]'
checkc "missing tool: failed_step is step 1 (create_namespace), argv[0] ndctl" '[ "$(jv "$W/fa.json" failed_step.index)" = 0 ] && [ "$(jv "$W/fa.json" failed_step.step.action)" = create_namespace ] && [ "$(jv "$W/fa.json" "failed_step.argv[0]")" = ndctl ]'
check "missing tool: failed_step.rc is null (it never ran)" [ "$(jv "$W/fa.json" failed_step.rc)" = null ]
echo "  failed_step.stderr: $(jv "$W/fa.json" failed_step.stderr)"
checkc "missing tool: stderr names ndctl, every directory searched and the package" 'grep -q "ndctl not found: searched /nonexistent, /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin .*install package ndctl on Debian/Ubuntu, ndctl on RHEL/Fedora, ndctl on SUSE" <<< "$(jv "$W/fa.json" failed_step.stderr)"'
checkc "missing tool: msg says step 1 failed and 0 steps were done" 'grep -q "step 1 of .* failed" <<< "$(msg_of fa)" && grep -q "0 steps were done" <<< "$(msg_of fa)"'
check "missing tool: nothing changed on the machine (facts before == after)" cmp -s "$W/fa.before.json" "$W/fa.after.json"

section "fault: a namespace larger than its region, and a full region"
facts fc.before
traced fc1 '{"namespaces":[{"name":"pmbig","region":"region0","mode":"fsdax","size":"2G"}]}'
FAULTS=$((FAULTS + 1))
checkc "too large: refused (rc 1) before anything runs: empty plan, nothing done, no process" '[ "$(rc_of fc1)" = 1 ] && [ "$NP" = 0 ] && [ "$ND" = 0 ] && [ -z "$(spawns fc1)" ]'
checkc "too large: the message names the region and the sizes" 'grep -q "region0 has 1G available, 2G needed" <<< "$(msg_of fc1)"'
traced fc2 '{"namespaces":[{"name":"pmfull","region":"region2","mode":"fsdax"}]}'
FAULTS=$((FAULTS + 1))
checkc "full region (region2, all of it the foreign namespace): refused before anything runs" '[ "$(rc_of fc2)" = 1 ] && [ "$NP" = 0 ] && [ "$ND" = 0 ] && [ -z "$(spawns fc2)" ]'
checkc "full region: the message names region2 and its 0 available" 'grep -q "region2 has 0 available" <<< "$(msg_of fc2)"'
facts fc.after
check "refusals: nothing changed on the machine (facts before == after)" cmp -s "$W/fc.before.json" "$W/fc.after.json"

section "fault: mkfs fails after the namespace and dm steps"
BADMKFS="{$NSJ,$DEVJ,${FSJ/'"label":"pmemfs"'/'"label":"pmemfs","mkfs_options":["-d","agcount=0"]'},$MNTJ,$BOOTJ}"
run fb "$BADMKFS"
FAULTS=$((FAULTS + 1))
F=$(jv "$W/fb.json" failed_step); echo "  failed_step: ${F:0:600}"
checkc "mkfs fails: rc 1, failed_step is the mkfs (step 4)" '[ "$(rc_of fb)" = 1 ] && [ "$(jv "$W/fb.json" failed_step.step.action)" = mkfs ] && [ "$(jv "$W/fb.json" failed_step.index)" = 3 ]'
checkc "mkfs fails: its argv (mkfs.xfs ... -d agcount=0 /dev/mapper/pmem-striped)" '[ "$(jv "$W/fb.json" "failed_step.argv[0]")" = mkfs.xfs ] && grep -q -F "\"agcount=0\", \"/dev/mapper/pmem-striped\"]" <<< "$(jv "$W/fb.json" failed_step.argv)"'
checkc "mkfs fails: exit status 1 and its stderr" '[ "$(jv "$W/fb.json" failed_step.rc)" = 1 ] && grep -q "agcount" <<< "$(jv "$W/fb.json" failed_step.stderr)"'
check "mkfs fails: done lists the steps before it" [ "$(acts fb done)" = create_namespace,create_namespace,create_dm ]
checkc "mkfs fails: changed true (3 steps were done), msg says so" '[ "$CH" = true ] && grep -q "3 steps were done before it" <<< "$(msg_of fb)"'
checkc "mkfs fails: nothing after it ran (not mounted, no boot file)" '! grep -q " /mnt/pmem " /proc/self/mountinfo && [ -z "$(managed_files)" ]'
run fb2 "$STRIPED"
checkc "then with good arguments: converges (rc 0), continuing from the dm device" '[ "$(rc_of fb2)" = 0 ] && [ "$CH" = true ] && ! grep -q namespace <<< "$(acts fb2 plan)" && grep -q "^mkfs,mount" <<< "$(acts fb2 done)"'
checkc "then: xfs mounted with dax=always" 'grep -q " /mnt/pmem .* - xfs .*dax=always" /proc/self/mountinfo'
run fb3 "$STRIPED"
check "then: unchanged" [ "$CH" = false ]

section "data safety: a converged striped xfs with a checksummed file, held open"
head -c 16M /dev/urandom > /mnt/pmem/data && sync
(cd /mnt/pmem && sha256sum data) > "$W/data.sum"
TABLE0=$(dmtable pmem-striped)
echo "  table: $TABLE0"
intact() {
  (cd /mnt/pmem && sha256sum -c --quiet "$W/data.sum") &&
    grep -q " /mnt/pmem .*dax=always" /proc/self/mountinfo &&
    [ "$(dmtable pmem-striped)" = "$TABLE0" ] &&
    [ "$(ns_mode pm0) $(ns_mode pm1)" = "fsdax fsdax" ]
}
exec 3< /mnt/pmem/data
# refuse NAME DESC JSON [MSG-REGEX]: refused without allow_data_loss, nothing done, data intact
refuse() {
  local name=$1 desc=$2 json=$3 re=${4:-allow_data_loss}
  run "$name" "$json"
  RULES=$((RULES + 1))
  checkc "$desc: refused (rc 1), nothing done" '[ "$(rc_of "$name")" = 1 ] && [ "$FA" = true ] && [ "$ND" = 0 ] && [ "$CH" = false ]'
  checkc "$desc: the message says why (/$re/)" 'grep -q -- "$re" <<< "$(msg_of "$name")"'
  checkc "$desc: data intact (sha256), mounted with DAX, table and namespaces unchanged" intact
}
refuse ds.ext4 "xfs -> ext4" "{$NSJ,$DEVJ,${FSJ/xfs/ext4},$MNTJ,$BOOTJ}" "making ext4 over the xfs filesystem.*allow_data_loss: true"
refuse ds.chunk "chunk 2M -> 4M" "{$NSJ,${DEVJ/2M/4M},$FSJ,$MNTJ,$BOOTJ}" "reloading dm device pmem-striped.*allow_data_loss: true"
refuse ds.order "members reordered" "{$NSJ,${DEVJ/'["pm0","pm1"]'/'["pm1","pm0"]'},$FSJ,$MNTJ,$BOOTJ}" "reloading dm device pmem-striped.*allow_data_loss: true"
refuse ds.devdax "pm1 -> devdax (the whole stack declared)" "{${NSJ/'"region1","mode":"fsdax"'/'"region1","mode":"devdax"'},$DEVJ,$FSJ,$MNTJ,$BOOTJ}" "devdax"
refuse ds.devdax2 "pm1 -> devdax (only the namespaces declared: the dm device is a holder not declared)" "{${NSJ/'"region1","mode":"fsdax"'/'"region1","mode":"devdax"'}}" "held by dm device pmem-striped"
refuse ds.gpt "a partition table declared on the dm device" "{$NSJ,$DEVJ,\"partitions\":[{\"name\":\"pmdata\",\"disk\":\"pmem-striped\"}],\"filesystems\":[{\"device\":\"pmdata\",\"type\":\"xfs\"}],\"mounts\":[{\"path\":\"/mnt/pmem\",\"device\":\"pmdata\",\"dax\":\"always\"}],$BOOTJ}" "writing a GPT on /dev/mapper/pmem-striped.*allow_data_loss: true"
# another dm device (over a loop device) with a filesystem, to move the mount to
modprobe -q loop 2>/dev/null
truncate -s 64M /dev/shm/other.img
LOOP=$(losetup -f --show /dev/shm/other.img)
dmsetup create test-other --table "0 $(blockdev --getsz "$LOOP") linear $LOOP 0" && udevadm settle
mkfs.ext4 -q -F /dev/mapper/test-other
refuse ds.move "the mount moved to another dm device (/dev/mapper/test-other)" "{$NSJ,$DEVJ,$FSJ,\"mounts\":[{\"path\":\"/mnt/pmem\",\"device\":\"/dev/mapper/test-other\",\"dax\":\"never\"}],$BOOTJ}" "/dev/mapper/pmem-striped (xfs) is mounted there.*allow_data_loss: true"
dmsetup remove test-other; losetup -d "$LOOP"; rm -f /dev/shm/other.img; udevadm settle

NEVER="{$NSJ,$DEVJ,$FSJ,${MNTJ/always/never},$BOOTJ}"
run ds.busy "$NEVER"
FAULTS=$((FAULTS + 1)); RULES=$((RULES + 1))
F=$(jv "$W/ds.busy.json" failed_step); echo "  failed_step: ${F:0:400}"
checkc "dax: never while a file is open: fails at the umount of /mnt/pmem, nothing done" '[ "$(rc_of ds.busy)" = 1 ] && [ "$(jv "$W/ds.busy.json" failed_step.step.action)" = umount ] && [ "$(jv "$W/ds.busy.json" failed_step.step.target)" = /mnt/pmem ] && [ "$ND" = 0 ]'
checkc "dax: never while a file is open: the message names the busy mount and allow_data_loss" 'grep -q "umount /mnt/pmem.*files are open.*allow_data_loss" <<< "$(msg_of ds.busy)"'
checkc "dax: never while a file is open: data intact, still mounted with DAX" intact
run ds.busyabs "$(with "$STRIPED" "$ABSENT")"
FAULTS=$((FAULTS + 1))
checkc "absent while a file is open: fails at the umount, nothing done, data intact" '[ "$(rc_of ds.busyabs)" = 1 ] && [ "$(jv "$W/ds.busyabs.json" failed_step.step.action)" = umount ] && [ "$ND" = 0 ] && grep -q allow_data_loss <<< "$(msg_of ds.busyabs)" && intact && ls "$R"/etc/pmem-stack/state.d/pmem-striped-*.json >/dev/null 2>&1'
exec 3<&-
run ds.never "$NEVER"
checkc "dax: never once the file is closed: umount, mount (rc 0)" '[ "$(rc_of ds.never)" = 0 ] && grep -q "^umount,mount" <<< "$(acts ds.never done)"'
DAXATTR=$(xfs_io -c 'statx -r' /mnt/pmem/data | sed -n 's/^stat.attributes = //p')
checkc "dax: never: mountinfo shows dax=never, the data file has no STATX_ATTR_DAX, data intact" 'grep " /mnt/pmem " /proc/self/mountinfo | grep -q "dax=never" && [ -n "$DAXATTR" ] && [ $(( DAXATTR & 0x200000 )) -eq 0 ] && (cd /mnt/pmem && sha256sum -c --quiet "$W/data.sum")'
run ds.always "$STRIPED"
checkc "back to dax: always: rc 0, data intact, mounted with DAX" '[ "$(rc_of ds.always)" = 0 ] && intact'

section "absent without allow_data_loss keeps the namespaces; present again finds the xfs"
run ds.absent "$(with "$STRIPED" "$ABSENT")"
checkc "absent: rc 0, unmounted, dm device and boot files removed" '[ "$(rc_of ds.absent)" = 0 ] && ! grep -q " /mnt/pmem " /proc/self/mountinfo && [ ! -e /dev/mapper/pmem-striped ] && [ -z "$(managed_files)" ]'
checkc "absent: no namespace destroyed, a warning says they are left in place" '! grep -q destroy_namespace <<< "$(acts ds.absent plan)" && [ "$(ns_names)" = "foreign pm0 pm1 " ] && grep -q "left in place" "$W/ds.absent.json"'
run ds.back "$STRIPED"
WHY=$(q skipped "$W/ds.back.json")
echo "  skipped: $WHY"
checkc "present again: rc 0, the dm device rebuilt" '[ "$(rc_of ds.back)" = 0 ] && [ "$(dmtable pmem-striped)" = "$TABLE0" ]'
checkc "present again: the mkfs step is skipped: already holds xfs" 'echo "$WHY" | grep -q "mkfs: /dev/mapper/pmem-striped already holds xfs"'
checkc "present again: no mkfs run" '! grep -q mkfs <<< "$(acts ds.back done)"'
checkc "present again: data intact (sha256), mounted with DAX" intact
check_foreign "after the faults and the data-safety rules"

section "crash recovery over what a destroyed namespace left (ndctl does not clear it)"
# the striped xfs above is torn down with its namespaces (no wiping this time); then the
# partition recipe crashes right after creating pm0 at the same place: the re-run must
# converge, as it does for a clean crash point (a crash-free run here converges)
run st.destroy "$(with "$STRIPED" "$DESTROY")"
check "striped stack destroyed with its namespaces" [ "$(ns_names)" = "foreign " ]
crash st.k1 "$PART" 1
CRASHES=$((CRASHES + 1))
check "partition recipe killed right after step 1" [ "$(rc_of st.k1)" = 137 ]
P0=$(ns_blk pm0)
echo "  pm0 = $P0, where the striped xfs was: $(blkid -p -o export "/dev/$P0" 2>/dev/null | grep -E '^(TYPE|LABEL)=' | tr '\n' ' ')"
run st.re1 "$PART"
checkc "the re-run converges (rc 0, changed true) over the stale content of a destroyed namespace" '[ "$(rc_of st.re1)" = 0 ] && [ "$CH" = true ]'
run st.destroy2 "$(with "$PART" "$DESTROY")"
run st.clean "$PART"
checkc "(for contrast: the same without a crash converges)" '[ "$(rc_of st.clean)" = 0 ]'
run st.destroy3 "$(with "$PART" "$DESTROY")"
check "partition stack destroyed" [ "$(ns_names)" = "foreign " ]

section "data safety: raw data (no signature) on dm devices: table changes that move it"
# an application writing the block device itself: nothing recognisable on it, so only the
# table tells whether a reload moves the data. The regions have labels by now (the
# sections above made and destroyed namespaces in them), so namespaces can be sized.
RNS='{"name":"pm0","region":"region0","mode":"fsdax","size":"256M"},{"name":"pm1","region":"region1","mode":"fsdax","size":"256M"},{"name":"pm2","region":"region0","mode":"fsdax","size":"256M"}'
RLIN='{"name":"raw-linear","target":"linear","members":["pm2"]}'
# raw_args CHUNK MEMBERS [EXTRA-NAMESPACES] [LINEAR-DEVICE]
raw_args() {
  printf '{"namespaces":[%s%s],"devices":[{"name":"raw-striped","target":"striped","members":%s,"chunk":"%s"},%s]}' \
    "$RNS" "${3:+,$3}" "$2" "$1" "${4:-$RLIN}"
}
RAW=$(raw_args 2M '["pm0","pm1"]')
run rw.make "$RAW"
checkc "raw: a striped device over pm0, pm1 (chunk 2M) and a linear one over pm2 made (rc 0)" '[ "$(rc_of rw.make)" = 0 ] && [ -b /dev/mapper/raw-striped ] && [ -b /dev/mapper/raw-linear ]'
head -c 8M /dev/urandom > "$W/raw.bin"
RAWSUM=$(sha256sum < "$W/raw.bin")
for d in raw-striped raw-linear; do
  dd if="$W/raw.bin" of=/dev/mapper/$d bs=1M oflag=direct conv=fsync status=none
done
raw_sum() { dd if="/dev/mapper/$1" bs=1M count=8 iflag=direct status=none | sha256sum; }
RTABLE=$(dmtable raw-striped)
echo "  raw-striped: $RTABLE"
checkc "raw: 8 MiB of random data written to both devices, read back (sha256), no signature blkid knows" \
  '[ "$(raw_sum raw-striped)" = "$RAWSUM" ] && [ "$(raw_sum raw-linear)" = "$RAWSUM" ] && ! blkid -p /dev/mapper/raw-striped > /dev/null 2>&1'
# refuse_raw NAME DESC JSON MSG-REGEX: refused, nothing done, table and data unchanged
refuse_raw() {
  local name=$1 desc=$2 json=$3 re=$4
  run "$name" "$json"
  RULES=$((RULES + 1))
  checkc "raw $desc: refused (rc 1), nothing done" '[ "$(rc_of "$name")" = 1 ] && [ "$FA" = true ] && [ "$ND" = 0 ] && [ "$NP" = 0 ] && [ "$CH" = false ]'
  checkc "raw $desc: the message says the change moves data, names the device and allow_data_loss (/$re/)" 'grep -q -- "$re" <<< "$(msg_of "$name")"'
  checkc "raw $desc: table unchanged, data intact (sha256)" '[ "$(dmtable raw-striped)" = "$RTABLE" ] && [ "$(raw_sum raw-striped)" = "$RAWSUM" ]'
}
MOVES="refusing reloading dm device raw-striped with another table.*the change moves data already on it"
refuse_raw rw.chunk "chunk 2M -> 1M" "$(raw_args 1M '["pm0","pm1"]')" "$MOVES (chunk 2M -> 1M).*Set allow_data_loss: true"
refuse_raw rw.order "members reordered" "$(raw_args 2M '["pm1","pm0"]')" "$MOVES (members reordered (/dev/pmem.*Set allow_data_loss: true"
refuse_raw rw.both "chunk 1M and members reordered" "$(raw_args 1M '["pm1","pm0"]')" "$MOVES (chunk 2M -> 1M; members reordered (.*Set allow_data_loss: true"
refuse_raw rw.check "chunk 1M in check mode" "$(with "$(raw_args 1M '["pm0","pm1"]')" "$CHECKMODE")" "$MOVES (chunk 2M -> 1M)"

LTABLE=$(dmtable raw-linear)
LSIZE=$(blockdev --getsz /dev/mapper/raw-linear)
GROW=$(raw_args 2M '["pm0","pm1"]' '{"name":"pm3","region":"region1","mode":"fsdax","size":"256M"}' '{"name":"raw-linear","target":"linear","members":["pm2","pm3"]}')
run rw.grow "$GROW"
echo "  raw-linear: $LTABLE -> $(dmtable raw-linear)"
checkc "raw linear + a namespace appended (made by the same run), without allow_data_loss: done (rc 0), reload_dm not destructive" \
  '[ "$(rc_of rw.grow)" = 0 ] && [ "$CH" = true ] && [ "$(acts rw.grow done)" = create_namespace,reload_dm ] && [ "$(jv "$W/rw.grow.json" "plan[1].destructive")" = false ]'
checkc "raw linear grown: the old table is the first line of the new one, the device is larger" \
  '[ "$(dmtable raw-linear | cut -d"|" -f1)" = "$LTABLE" ] && [ "$(blockdev --getsz /dev/mapper/raw-linear)" -gt "$LSIZE" ]'
checkc "raw linear grown: the first member's data intact (sha256); the striped device untouched" \
  '[ "$(raw_sum raw-linear)" = "$RAWSUM" ] && [ "$(dmtable raw-striped)" = "$RTABLE" ] && [ "$(raw_sum raw-striped)" = "$RAWSUM" ]'
run rw.grow2 "$GROW"
check "raw linear grown: a re-run is unchanged" [ "$CH" = false ]

run rw.allowed "$(with "$(raw_args 1M '["pm0","pm1"]' '{"name":"pm3","region":"region1","mode":"fsdax","size":"256M"}' '{"name":"raw-linear","target":"linear","members":["pm2","pm3"]}')" '"allow_data_loss":true')"
checkc "raw chunk 1M with allow_data_loss: reload_dm done, planned destructive" \
  '[ "$(rc_of rw.allowed)" = 0 ] && [ "$(acts rw.allowed done)" = reload_dm ] && [ "$(jv "$W/rw.allowed.json" "plan[0].destructive")" = true ]'
checkc "raw chunk 1M with allow_data_loss: the table has chunk 2048 sectors, and the data did move (sha256 differs)" \
  'dmtable raw-striped | grep -q " striped 2 2048 " && [ "$(raw_sum raw-striped)" != "$RAWSUM" ]'
run rw.destroy "$(with "$GROW" "$DESTROY")"
checkc "raw devices and their namespaces destroyed (rc 0)" '[ "$(rc_of rw.destroy)" = 0 ] && [ "$(ns_names)" = "foreign " ] && [ -z "$(stray_dm)" ]'

section "the end"
check_foreign "at the end"
check "no dm device left but foreign-dm" [ -z "$(stray_dm)" ]
echo "crash points tried: $CRASHES"
echo "faults injected: $FAULTS"
echo "data-safety rules checked: $RULES"
echo "guest script time: $(( $(date +%s) - T_START )) s"
summary
