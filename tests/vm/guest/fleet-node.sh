# A managed host of the fleet run (tests/vm/fleet.sh): runs INSIDE a VM guest booted with
# `run-guest.sh -N PORT -w SHARE`, serves SSH on port 22 (which QEMU forwards from
# 127.0.0.1:PORT on the controller) until the controller writes SHARE/stop.
#   fleet-node.sh SHARE NAME
# SHARE holds the host key and authorized_keys the controller made; NAME.ready tells the
# controller that sshd is up, NAME.sshd.log is sshd's log. Root logs in with the key only.
# Nothing of pmem_stack is installed here: Ansible copies the module in for each task.
set -u
SHARE=$1 NAME=$2
# root's home as on a fresh Debian host (the guest's /root is this machine's, with its
# shell set-up and tools), so a login sees what it would on a managed host
mount -t tmpfs -o mode=0700 tmpfs /root
cp /usr/share/base-files/dot.bashrc /root/.bashrc; cp /usr/share/base-files/dot.profile /root/.profile
mkdir -p /run/sshd && chmod 0755 /run/sshd   # sshd's privilege separation directory
cat > /run/fleet-sshd.conf <<EOF
Port 22
ListenAddress 0.0.0.0
HostKey $SHARE/host_key
AuthorizedKeysFile $SHARE/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
Subsystem sftp internal-sftp
EOF
/usr/sbin/sshd -t -f /run/fleet-sshd.conf || { echo "fleet-node $NAME: the sshd config is refused"; exit 1; }
/usr/sbin/sshd -D -e -f /run/fleet-sshd.conf > "$SHARE/$NAME.sshd.log" 2>&1 &
SSHD=$!
sleep 0.5
kill -0 $SSHD 2>/dev/null || { echo "fleet-node $NAME: sshd did not start"; cat "$SHARE/$NAME.sshd.log"; exit 1; }
echo "fleet-node $NAME: sshd up (pid $SSHD) $(cut -d' ' -f1 /proc/uptime)s, kernel $(uname -r)"
echo up > "$SHARE/$NAME.ready"
# serve until the controller is done (or gives up: run-guest.sh's -t bounds the guest)
while [ ! -e "$SHARE/stop" ]; do sleep 1; done
kill $SSHD 2>/dev/null
echo "fleet-node $NAME: stopped"
