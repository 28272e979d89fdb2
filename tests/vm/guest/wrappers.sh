#!/bin/bash
# VM suite (runs INSIDE the guest): the Salt and Puppet wrappers of contrib/ through the
# real clients, with the binary installed where they expect it (/usr/local/bin).
# Salt (salt from PyPI in target/salt-venv, `salt-call --local`): the state module
# (contrib/salt/_states/pmem_stack.py, contrib/salt/pmem_stack.sls) and the cmd.run
# route (contrib/salt/pmem_stack_cmd.sls) on the striped xfs stack: test=True lists the
# pending steps and changes nothing; the apply converges; the next apply (both routes)
# reports no changes; a bad argument fails with its JSON path in the comment. Then the
# stack is torn down through the binary, as a person runs it (`--format text
# --detailed-exitcode`: each step shown as it starts and ends, exit 2). Puppet (Debian's, `puppet apply`) with
# pmem_stack::stack (contrib/puppet) on the linear ext4 stack: --noop shows the exec
# pending and changes nothing; the apply converges (exit 2); the next one changes
# nothing (exit 0); bad arguments fail the resource with the module's message.
# Every client's output is printed as it came.
source "$(dirname "$0")/lib.sh"
REPO=$(cd "$HERE/../../.." && pwd)
SALT_VENV=${PMEM_STACK_SALT_VENV:-$REPO/target/salt-venv}
export LANG=C.UTF-8 LC_ALL=C.UTF-8
install -m 0755 "$BIN" /usr/local/bin/pmem_stack

# show NAME: a client's output as it came, indented, with its exit status and time
show() {
  echo "  [$1] exit $(cat "$W/$1.rc") after $(cat "$W/$1.secs") s:"
  sed 's/^/    | /' "$W/$1.log"
}
has() { grep -qF -- "$2" "$W/$1.log"; }

# ---- Salt ---------------------------------------------------------------------------------
section "Salt: salt-call --local with contrib/salt in a file root"
SALT=$W/salt
mkdir -p "$SALT/etc" "$SALT/srv/_states"
cat > "$SALT/etc/minion" <<EOF
id: pmem-guest
file_client: local
root_dir: $SALT/root
file_roots:
  base: [$SALT/srv]
enable_fqdns_grains: False
grains_cache: True
EOF
cp "$REPO/contrib/salt/_states/pmem_stack.py" "$SALT/srv/_states/"
cp "$REPO/contrib/salt/pmem_stack.sls" "$REPO/contrib/salt/pmem_stack_cmd.sls" "$SALT/srv/"
# a typo in an option (`regio`), as a user would make it
sed 's/region: region0/regio: region0/; s/^pmem-striped:/pmem-typo:/' "$REPO/contrib/salt/pmem_stack.sls" > "$SALT/srv/pmem_stack_typo.sls"
# salt NAME ARGS...: salt-call --local ARGS, output in $W/NAME.log, printed
salt() {
  local name=$1 t0=$SECONDS; shift
  echo "  \$ salt-call --local $*"
  "$SALT_VENV/bin/salt-call" -c "$SALT/etc" --local --retcode-passthrough --no-color "$@" > "$W/$name.log" 2>&1
  echo $? > "$W/$name.rc"
  echo $((SECONDS - t0)) > "$W/$name.secs"
  show "$name"
}
echo "  salt $("$SALT_VENV/bin/python" -c "import importlib.metadata as m; print(m.version('salt'))") ($SALT_VENV)"

facts salt.facts0
salt salt.test state.apply pmem_stack,pmem_stack_cmd test=True sync_mods=states
facts salt.facts1
check "salt test=True: changed nothing on the machine (facts compared)" cmp -s "$W/salt.facts0.json" "$W/salt.facts1.json"
checkc "salt test=True: exit 0, both states Result None, none failed" '[ "$(rc_of salt.test)" = 0 ] && [ "$(grep -c "Result: None" "$W/salt.test.log")" = 2 ] && has salt.test "Failed:    0"'
checkc "salt test=True: the module lists the pending steps" 'has salt.test "pending:" && has salt.test "namespace pm0" && has salt.test "- create_dm /dev/mapper/pmem-striped" && has salt.test "- mount /mnt/pmem"'
checkc "salt test=True: cmd.run stateful ran test_name (--check): check_mode true, the plan in changes" 'has salt.test "Name: /usr/local/bin/pmem_stack" && grep -A2 "check_mode:" "$W/salt.test.log" | grep -q True'
checkc "salt test=True: no namespace, dm device or mount made" '! ndctl list -N | grep -q "\"name\":\"pm" && ! dmsetup info pmem-striped >/dev/null 2>&1 && ! grep -q " /mnt/pmem " /proc/self/mountinfo'

salt salt.apply state.apply pmem_stack
checkc "salt apply: exit 0, Result True, changed=1, the steps done listed" '[ "$(rc_of salt.apply)" = 0 ] && has salt.apply "Result: True" && has salt.apply "Succeeded: 1 (changed=1)" && has salt.apply "done:" && has salt.apply "- mkfs "'
echo "  dmsetup table pmem-striped: $(dmtable pmem-striped)"
checkc "salt apply: converged: striped 2 stripes, chunk 4096 sectors" '[ "$(dmtable pmem-striped | awk "{print \$3, \$4, \$5}")" = "striped 2 4096" ]'
checkc "salt apply: xfs on /mnt/pmem mounted with dax=always" 'grep " /mnt/pmem " /proc/self/mountinfo | grep " - xfs " | grep -q "dax=always"'

salt salt.again state.apply pmem_stack,pmem_stack_cmd
checkc "salt apply again (module and cmd.run routes): exit 0, no changes" '[ "$(rc_of salt.again)" = 0 ] && has salt.again "Succeeded: 2" && ! has salt.again "changed=" && [ "$(grep -c "Result: True" "$W/salt.again.log")" = 2 ]'

salt salt.typo state.apply pmem_stack_typo
checkc "salt bad argument: the state fails (exit 2, Result False)" '[ "$(rc_of salt.typo)" = 2 ] && has salt.typo "Result: False" && has salt.typo "Failed:    1"'
checkc "salt bad argument: the comment names it by its JSON path" 'grep -q "Comment: .*namespaces\[0\]\.regio: unknown field" "$W/salt.typo.log"'
checkc "salt bad argument: the stack is untouched" 'grep -q " /mnt/pmem .*dax=always" /proc/self/mountinfo'

STRIPED='{"namespaces":[{"name":"pm0","region":"region0","mode":"fsdax"},{"name":"pm1","region":"region1","mode":"fsdax"}],"devices":[{"name":"pmem-striped","target":"striped","members":["pm0","pm1"],"chunk":"2M"}],"filesystems":[{"device":"pmem-striped","type":"xfs","label":"pmemfs"}],"mounts":[{"path":"/mnt/pmem","device":"pmem-striped","dax":"always"}]'
# the teardown through the binary as a person runs it: --format text (each step shown as
# it starts and ends) with --detailed-exitcode (2: changes made)
printf '%s' "$STRIPED,\"state\":\"absent\",\"allow_data_loss\":true}" > "$W/salt.destroy.args"
"$BIN" --format text --detailed-exitcode "$W/salt.destroy.args" > "$W/salt.destroy.txt" 2>&1
echo $? > "$W/salt.destroy.rc"
echo "  \$ pmem_stack --format text --detailed-exitcode <state: absent>  (exit $(rc_of salt.destroy))"
sed 's/^/    | /' "$W/salt.destroy.txt"
checkc "the striped stack torn down through the binary (namespaces freed), exit 2: changes made" '[ "$(rc_of salt.destroy)" = 2 ] && ! ndctl list -N | grep -q "\"name\":\"pm"'
checkc "--format text showed each step as it started and as it ended" 'n=$(grep -c "^\[[0-9]*/[0-9]*\] .* \.\.\.$" "$W/salt.destroy.txt"); [ "$n" -ge 3 ] && [ "$(grep -c "^\[[0-9]*/[0-9]*\] .*: done ([0-9.]* s)$" "$W/salt.destroy.txt")" = "$n" ] && grep -q "^\[1/[0-9]*\] umount /mnt/pmem" "$W/salt.destroy.txt"'
"$BIN" --check --detailed-exitcode "$W/salt.destroy.args" > "$W/salt.destroyed.json" 2>&1
echo $? > "$W/salt.destroyed.rc"
checkc "then --check --detailed-exitcode: exit 0, nothing left to do" '[ "$(rc_of salt.destroyed)" = 0 ] && [ "$(jv "$W/salt.destroyed.json" changed)" = false ]'

# ---- Puppet -------------------------------------------------------------------------------
section "Puppet: puppet apply with pmem_stack::stack (contrib/puppet)"
echo "  puppet $(dpkg-query -W -f '${Version}' puppet-agent) (Debian's puppet-agent)"
PP=$W/puppet
mkdir -p "$PP"
cp "$REPO/contrib/puppet/pmem_stack/examples/linear.pp" "$PP/linear.pp"
cat > "$PP/typo.pp" <<'EOF'
pmem_stack::stack { 'pmem-typo':
  args => {
    'namespaces' => [{ 'name' => 'pm0', 'regio' => 'region0', 'mode' => 'fsdax' }],
  },
}
EOF
# pup NAME ARGS...: puppet apply --detailed-exitcodes ARGS, output in $W/NAME.log, printed
pup() {
  local name=$1 t0=$SECONDS; shift
  echo "  \$ puppet apply --detailed-exitcodes $*"
  puppet apply --color=false --detailed-exitcodes --modulepath "$REPO/contrib/puppet" "$@" > "$W/$name.log" 2>&1
  echo $? > "$W/$name.rc"
  echo $((SECONDS - t0)) > "$W/$name.secs"
  show "$name"
}
EXEC='Pmem_stack::Stack[pmem-linear]/Exec[pmem_stack pmem-linear]'

facts pup.facts0
pup pup.noop --noop "$PP/linear.pp"
facts pup.facts1
check "puppet --noop: changed nothing on the machine (facts compared)" cmp -s "$W/pup.facts0.json" "$W/pup.facts1.json"
checkc "puppet --noop: the exec is pending (noop), nothing failed" '[ "$(rc_of pup.noop)" = 0 ] && has pup.noop "$EXEC/returns: current_value '"'notrun'"', should be ['"'0'"'] (noop)" && ! grep -q "^Error: /Stage" "$W/pup.noop.log"'
checkc "puppet --noop: no namespace, dm device or mount made" '! ndctl list -N | grep -q "\"name\":\"pm" && ! dmsetup info pmem-linear >/dev/null 2>&1 && ! grep -q " /mnt/pmem-linear " /proc/self/mountinfo'

pup pup.apply "$PP/linear.pp"
checkc "puppet apply: exit 2 (changes), the exec executed successfully" '[ "$(rc_of pup.apply)" = 2 ] && has pup.apply "$EXEC/returns: executed successfully" && ! grep -q "^Error: /Stage" "$W/pup.apply.log"'
echo "  dmsetup table pmem-linear: $(dmtable pmem-linear)"
checkc "puppet apply: converged: dm-linear, ext4 on /mnt/pmem-linear with dax=always" 'dmtable pmem-linear | grep -q " linear " && grep " /mnt/pmem-linear " /proc/self/mountinfo | grep " - ext4 " | grep -q "dax=always"'
checkc "puppet apply: the arguments file is root's, mode 0600" '[ "$(stat -c %a:%U /etc/pmem-stack-puppet/pmem-linear.json)" = 600:root ]'

pup pup.again "$PP/linear.pp"
checkc "puppet apply again: exit 0, the exec not run (its unless: --check --detailed-exitcode exited 0)" '[ "$(rc_of pup.again)" = 0 ] && ! has pup.again "Exec[" && ! grep -q "^Error: /Stage" "$W/pup.again.log"'

pup pup.typo "$PP/typo.pp"
checkc "puppet bad argument: the run fails (exit 4 or 6), the exec's resource failed" 'case "$(rc_of pup.typo)" in 4|6) true ;; *) false ;; esac && has pup.typo "Error: /Stage[main]/Main/Pmem_stack::Stack[pmem-typo]/Exec[pmem_stack pmem-typo]/returns: change from '"'notrun'"' to ['"'0'"'] failed"'
checkc "puppet bad argument: the module's message in the report" 'has pup.typo "namespaces[0].regio: unknown field"'
checkc "puppet bad argument: the linear stack untouched" 'grep -q " /mnt/pmem-linear .*dax=always" /proc/self/mountinfo'

LINEAR='{"namespaces":[{"name":"pm0","region":"region0","mode":"fsdax"},{"name":"pm1","region":"region1","mode":"fsdax"}],"devices":[{"name":"pmem-linear","target":"linear","members":["pm0","pm1"]}],"filesystems":[{"device":"pmem-linear","type":"ext4","label":"pmemlin"}],"mounts":[{"path":"/mnt/pmem-linear","device":"pmem-linear","dax":"always"}]'
module pup.destroy "$LINEAR,\"state\":\"absent\",\"allow_data_loss\":true}"
checkc "the linear stack torn down through the binary" '[ "$(rc_of pup.destroy)" = 0 ] && ! ndctl list -N | grep -q "\"name\":\"pm"'

echo "  (${SECONDS} s in the guest)"
summary
