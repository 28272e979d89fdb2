#!/bin/bash
# tests/vm/run-guest.sh - pmem-stack's own VM test rig. Runs a command as root inside a
# QEMU guest that boots Debian's own kernel (linux-image-amd64) with emulated NVDIMMs
# (ACPI NFIT, label areas), so that libnvdimm/ndctl, device-mapper, GPT partitions,
# ext4/xfs and DAX are real (the host kernel has no dm, no partition tables, no KVM).
# Self-contained: needs only the Debian packages listed below, nothing outside the repo.
#
# The guest sees the host's root filesystem READ-ONLY over virtio-9p (so every host
# tool and /lib/modules/<guest kernel> is available; modprobe works). /etc /var /tmp
# /root /home /mnt /media /srv /opt /usr/local are copy-on-write overlays (writes stay in
# guest RAM, are lost at exit unless -P keeps them), /run is a tmpfs, and host directories
# named with -w (and the output dir) are shared READ-WRITE at the same path.
#
# Two ways to boot: by default the command runs as PID 1 right after the root is ready
# (a few seconds, udevd started by hand). With -S, systemd is PID 1 and boots the host's
# units (those enabled on the host in /etc/systemd/system are left out, so the guest
# boots what a minimal Debian boots less a few units that have nothing to do with
# storage, plus whatever the test enables); the command runs as
# a service once multi-user.target is reached, and the guest powers off through systemd
# when it ends. With -P DIR, what the guest wrote to the overlays (/etc /var /root /mnt
# /usr/local, the upper layers) is saved in DIR when the command ends and restored at
# the next boot with the same -P DIR: a root disk that survives a reboot.
#
# Usage:  run-guest.sh [options] -- COMMAND [ARGS...]
#         run-guest.sh [options] -c 'shell command string'
# Options:
#   -c STR        run STR with bash -c (instead of "-- COMMAND ARGS")
#   -m MEM        guest RAM, e.g. 512M, 1G; plain number = MiB (default 1G; 256M was enough)
#   -n N          number of NVDIMMs (default 2; 0 = none)
#   -s SIZE       usable pmem size per NVDIMM, MiB, multiple of 16 (default 1024)
#   -L            no label area (label-less DIMMs: raw namespaces only, no init-labels)
#   -k DIR        keep NVDIMM backing files in DIR (reused if present: persistence tests)
#   -r            enumerate the NVDIMMs in REVERSE order: a reboot with -k and -r sees the
#                 same DIMMs (each file keeps its slot, serial number and address, so its
#                 labels stay valid) listed the other way round, so what was region0/pmem0
#                 becomes region1/pmem1 (tests identify-by-name, never by /dev/pmemN)
#   -w DIR        share host DIR read-write into the guest at the same path (repeatable)
#   -o DIR        output dir (default: new mktemp dir); gets console.log, output.log, rc
#   -t SECS       timeout for the whole VM run (default 900)
#   -p CPUS       guest vCPUs (default: host nproc, max 4)
#   -K VMLINUZ    kernel: a path, or a version such as 6.12 (the newest /boot/vmlinuz-6.12*
#                 that has /lib/modules/<version>; the host's running kernel usually has
#                 none and is skipped)
#   -A ACCEL      tcg (default; env PMEM_STACK_VM_ACCEL) or kvm
#   -U            do not start systemd-udevd in the guest (then dmsetup makes no /dev/mapper
#                 nodes unless DM_DISABLE_UDEV=1 or 'dmsetup mknodes'; no /dev/disk/by-*)
#   -S            boot with systemd as PID 1 (see above); the command runs as the service
#                 pmemvm-command.service after multi-user.target
#   -P DIR        keep the overlays' writes in DIR across boots (see above)
#   -E ARGS       extra kernel command-line arguments, e.g. 'memmap=512M!768M memmap=512M!1536M'
#                 (PMEM emulated in RAM, as pmem.io's guide tells readers without NVDIMMs:
#                 legacy e820 regions, label-less; use -n 0 and -m large enough to hold them)
#   -R FILE       back the guest's RAM with FILE (created at the -m size if missing, kept):
#                 what memmap= made PMEM of then survives a power-off of the guest, as
#                 memmap PMEM survives a warm reboot on real hardware
#   -M            NUMA: the guest's RAM and CPUs in node 0, the NVDIMMs in node 1 (no CPU,
#                 no RAM of its own), as a machine's persistent memory is its own node:
#                 a devdax namespace made system RAM (daxctl) becomes node 1's memory
#   -X N          N emulated CXL type-3 memory devices (QEMU 7.2's cxl-type3) with a label
#                 area, 512 MiB each, persistent (pmem) capacity; serials 0x1.. (each keeps
#                 its serial across boots, as a real memdev does); each on a root port of its
#                 own under one CXL host bridge, behind one 4 GiB fixed memory window
#                 (decoder0.0); backing files in the -k dir (kept) or the output dir. What
#                 it takes under TCG (KERNEL-FACTS): two root ports at least, a nonzero
#                 serial, -cpu max,hypervisor=off, and pcie_ports=compat
#   -N PORT       a network card: QEMU user networking, restricted (the guest reaches
#                 nothing outside), with 127.0.0.1:PORT on this machine forwarded to the
#                 guest's port 22; the guest's card gets 10.0.2.15/24 before the command
#                 runs (the command starts an SSH server: tests/vm/guest/fleet-node.sh)
# Kernel by version: PMEM_STACK_VM_KERNEL=6.12 (or 6.1, or a path) picks the newest
# /boot/vmlinuz-6.12.* or -6.12-* with modules; -K wins over it. Default: 6.1, Debian 12's
# own kernel (linux-image-amd64), then the newest with modules.
# Exit status: the guest command's exit status; 124 timeout; 125 infrastructure failure
# (guest never reported a status). The command's stdout+stderr (merged) are echoed to our
# stdout and kept in OUT/output.log; kernel console in OUT/console.log. The command runs as
# root with a clean environment (HOME=/root, standard PATH), cwd = caller's cwd if visible.
# On failure (timeout / no status) the console tail is printed to stderr. NVDIMM backing
# files (they fill with real blocks) are deleted at exit unless -k is given.
# The initramfs is cached in $PMEM_STACK_VM_CACHE (default /var/tmp/pmem-stack-vm), keyed
# by kernel + busybox + this script, so editing this script rebuilds it.
#
# Needs (Debian 12): qemu-system-x86 linux-image-amd64 busybox-static cpio kmod
#                    + in-guest tools: ndctl dmsetup kpartx gdisk xfsprogs e2fsprogs
set -euo pipefail

CMD_STR=""; MEM=1G; NDIMM=2; PMEM_MIB=1024; LABELS=1; KEEPDIR=""; OUT=""; TMO=900
CPUS=$(nproc); [ "$CPUS" -gt 4 ] && CPUS=4
KERNEL=""; ACCEL=${PMEM_STACK_VM_ACCEL:-tcg}; RWDIRS=(); UDEV=1; REVERSE=0; SYSTEMD=0; PERSIST=""; NETPORT=""
KARGS=""; RAMFILE=""; NCXL=0; NUMA=0
while getopts "c:m:n:s:Lk:rw:o:t:p:K:A:USP:N:E:R:X:Mh" opt; do
  case $opt in
    c) CMD_STR=$OPTARG;; m) MEM=$OPTARG;; n) NDIMM=$OPTARG;; s) PMEM_MIB=$OPTARG;;
    L) LABELS=0;; k) KEEPDIR=$OPTARG;; r) REVERSE=1;; w) RWDIRS+=("$(realpath "$OPTARG")");;
    o) OUT=$OPTARG;; t) TMO=$OPTARG;; p) CPUS=$OPTARG;; K) KERNEL=$OPTARG;; A) ACCEL=$OPTARG;; U) UDEV=0;;
    N) NETPORT=$OPTARG;; E) KARGS=$OPTARG;; R) RAMFILE=$OPTARG;; X) NCXL=$OPTARG;; M) NUMA=1;;
    S) SYSTEMD=1;; P) mkdir -p "$OPTARG"; PERSIST=$(realpath "$OPTARG"); RWDIRS+=("$PERSIST");;
    h|*) awk 'NR>1 && /^#/ {sub(/^# ?/,""); print; next} NR>1 {exit}' "$0"; exit 2;;
  esac
done
shift $((OPTIND-1))
[ "${1:-}" = "--" ] && shift
if [ -z "$CMD_STR" ] && [ $# -eq 0 ]; then echo "run-guest.sh: no command given" >&2; exit 2; fi
if [ $((PMEM_MIB % 16)) -ne 0 ]; then echo "run-guest.sh: -s must be a multiple of 16 (region align)" >&2; exit 2; fi

die() { echo "run-guest.sh: $*" >&2; exit 125; }
for b in qemu-system-x86_64 cpio; do command -v $b >/dev/null || die "missing $b"; done
[ -x /bin/busybox ] || die "missing /bin/busybox (apt-get install busybox-static)"
WANT=${PMEM_STACK_VM_KERNEL:-}
case $KERNEL in ""|/*) ;; *) WANT=$KERNEL; KERNEL="";; esac   # -K 6.12: a version
case $WANT in /*) [ -n "$KERNEL" ] || KERNEL=$WANT; WANT="";; esac
if [ -z "$KERNEL" ]; then   # the newest kernel in /boot of that version whose modules are installed
  for pat in ${WANT:-6.1} ""; do
    [ -n "$WANT" ] && [ -z "$pat" ] && break   # a version asked for: that one or none
    for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -rV); do
      v=${k##*/vmlinuz-}
      case $v in "$pat".*|"$pat"-*|"$pat") ;; *) [ -n "$pat" ] && continue;; esac
      [ -r "$k" ] && [ -s "/lib/modules/$v/modules.dep" ] && { KERNEL=$k; break 2; }
    done
  done
fi
[ -r "$KERNEL" ] || die "no kernel ${WANT:+$WANT }with modules in /boot (apt-get install linux-image-amd64${WANT:+, or scripts/install-deps.sh for $WANT})"
KVER=${KERNEL##*/vmlinuz-}
[ -d /lib/modules/$KVER ] || die "no /lib/modules/$KVER"

[ -n "$OUT" ] || OUT=$(mktemp -d /tmp/vmguest.XXXXXX)
mkdir -p "$OUT"; OUT=$(realpath "$OUT"); rm -f "$OUT/rc" "$OUT/output.log" "$OUT/console.log" "$OUT/qemu.log"
for d in "$OUT" "${RWDIRS[@]}"; do case "$d" in *[[:space:],]*) echo "run-guest.sh: no spaces/commas in shared paths: $d" >&2; exit 2;; esac; done

# ---- initramfs (cached per kernel + this script's version) --------------------------
CACHE=${PMEM_STACK_VM_CACHE:-/var/tmp/pmem-stack-vm}; mkdir -p "$CACHE"
SIG=$(cat "${BASH_SOURCE[0]}" /bin/busybox "$KERNEL" | md5sum | cut -c1-12)
INITRD=$CACHE/initrd-$KVER-$SIG.cpio.gz
if [ ! -s "$INITRD" ]; then
  T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
  mkdir -p $T/bin $T/dev $T/proc $T/sys $T/newroot $T/mods
  mknod -m 600 $T/dev/console c 5 1 2>/dev/null || true
  cp /bin/busybox $T/bin/busybox
  # modules needed to reach the 9p root; the rest are modprobe'd later from the host tree
  : > $T/mods/order
  for m in virtio_pci 9pnet_virtio 9p overlay; do
    modprobe -S "$KVER" --show-depends $m | awk '$1=="insmod"{print $2}'
  done | awk '!seen[$0]++' | while read -r ko; do
    b=${ko##*/}   # store uncompressed (Debian >= 6.x backports ship .ko.xz)
    case $ko in *.xz) xz -dc "$ko" > $T/mods/${b%.xz};; *.zst) zstd -qdc "$ko" > $T/mods/${b%.zst};;
                *) cp "$ko" $T/mods/;; esac
    b=${b%.xz}; echo "${b%.zst}" >> $T/mods/order
  done
  cat > $T/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo "PMEMVM: initramfs up $(cut -d' ' -f1 /proc/uptime)s"
for ko in $(cat /mods/order); do insmod /mods/$ko || echo "PMEMVM: insmod $ko failed"; done
OUTDIR=""; RWDIRS=""
for w in $(cat /proc/cmdline); do case $w in
  pmemvm.out=*) OUTDIR=${w#*=};; pmemvm.rw=*) RWDIRS=$(echo ${w#*=} | tr ',' ' ');; esac; done
fail() { echo "PMEMVM: $*"; echo "PMEMVM_RC=125"; sync; poweroff -f; sleep 5; echo o > /proc/sysrq-trigger; }
i=0; until mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /newroot; do
  i=$((i+1)); [ $i -ge 50 ] && fail "cannot mount 9p root"; sleep 0.1; done
R=/newroot
SYSTEMD=0; PERSIST=0
for w in $(cat /proc/cmdline); do case $w in pmemvm.systemd=1) SYSTEMD=1;; pmemvm.persist=1) PERSIST=1;; esac; done
mount -t proc proc $R/proc; mount -t sysfs sysfs $R/sys; mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm; mount -t devpts devpts $R/dev/pts; mount -t tmpfs tmpfs $R/dev/shm
ln -s /proc/self/fd $R/dev/fd; ln -s /proc/self/fd/0 $R/dev/stdin; ln -s /proc/self/fd/1 $R/dev/stdout; ln -s /proc/self/fd/2 $R/dev/stderr
mount -t tmpfs -o mode=0755 tmpfs $R/run
# writable copy-on-write views (overlayfs: host content visible, writes go to guest RAM);
# the upper layers live under /run/pmemvm/ovl, where the command's end can save them (-P)
O=$R/run/pmemvm/ovl; mkdir -p $O; mount -t tmpfs tmpfs $O
if [ $PERSIST = 1 ]; then   # -P: the upper layers the last boot saved
  mkdir -p /persist
  mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=262144 persist /persist || fail "cannot mount the -P share"
  for t in /persist/upper-*.tar; do
    [ -f "$t" ] || continue
    d=$(basename "$t" .tar); d=${d#upper-}; d=/$(echo "$d" | tr '+' '/')
    mkdir -p $O$d/u; tar -xf "$t" -C $O$d/u || echo "PMEMVM: restoring $d failed"
  done
  umount /persist
  echo "PMEMVM: restored the saved writes $(cut -d' ' -f1 /proc/uptime)s"
fi
for d in /etc /var /tmp /root /home /mnt /media /srv /opt /usr/local; do
  [ -d $R$d ] || continue
  mkdir -p $O$d/u $O$d/w; chmod $(stat -c %a $R$d) $O$d/u
  mount -t overlay -o lowerdir=$R$d,upperdir=$O$d/u,workdir=$O$d/w overlay $R$d 2>/dev/null || {
    echo "PMEMVM: overlay on $d failed, using empty tmpfs"; mount -t tmpfs tmpfs $R$d; }
done
mount -t configfs configfs $R/sys/kernel/config 2>/dev/null
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
n=0; for d in $RWDIRS; do
  mkdir -p $R$d 2>/dev/null   # only works under a tmpfs mount point; else must exist on host
  mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=262144 rw$n $R$d || fail "cannot mount rw share $d"
  n=$((n+1)); done
echo "PMEMVM: root ready $(cut -d' ' -f1 /proc/uptime)s"
if [ $SYSTEMD = 1 ]; then
  # systemd as PID 1. The host's own enabled units (a database, timers, gettys) are left
  # out: whited out in the /etc overlay, as a minimal Debian has none. What a test
  # enables (in the guest, or kept by -P) is left alone: it is in the upper layer.
  for w in $(ls -d $R/etc/systemd/system/*.wants 2>/dev/null); do
    for u in $(ls $w); do [ -e $O/etc/u/systemd/system/${w##*/}/$u ] || [ -L $O/etc/u/systemd/system/${w##*/}/$u ] || rm -f $w/$u; done
  done
  : > $R/etc/fstab
  # /tmp holds the host's files the test runs (the lower layer): systemd-tmpfiles must
  # not empty it at boot (tmp.conf's "D /tmp")
  mkdir -p $R/etc/tmpfiles.d; ln -sf /dev/null $R/etc/tmpfiles.d/tmp.conf
  mkdir -p $R/etc/systemd/system/multi-user.target.wants
  cat > $R/etc/systemd/system/pmemvm-command.service <<UNIT
[Unit]
Description=pmem-stack VM test command ($OUTDIR/cmd.sh)
After=multi-user.target

[Service]
Type=exec
Environment=HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ExecStart=/bin/bash $OUTDIR/.inner.sh
StandardOutput=console
UNIT
  ln -sf /etc/systemd/system/pmemvm-command.service $R/etc/systemd/system/multi-user.target.wants/pmemvm-command.service
  # Shared mount propagation, as systemd sets it up on a real host at boot (mount-setup:
  # MS_REC|MS_SHARED on /). Here it would skip that: it sees the host's /.dockerenv
  # through the 9p root (when this machine is a Docker container) and takes itself for a
  # container (systemd-detect-virt -c: docker). Without it every mount is private and a
  # sandboxed service (systemd-logind) keeps copies of later mounts that no umount reaches.
  mount --make-rshared $R || echo "PMEMVM: making the root shared (--make-rshared) failed"
  # Taking itself for a container (above), systemd reads its options (systemd.mask=,
  # systemd.show_status=) from its own command line, not the kernel's: they are passed on.
  SDARGS=""; for w in $(cat /proc/cmdline); do case $w in systemd.*) SDARGS="$SDARGS $w";; esac; done
  exec switch_root $R /lib/systemd/systemd $SDARGS
  fail "switch_root to systemd failed"
fi
# switch_root (not chroot): PID 1 shares its fs_struct with kernel threads, so the kernel's
# own module requests (mount -t ext4 -> request_module -> /sbin/modprobe) then find the host's
# modprobe and /lib/modules; and udevadm does not refuse to work "in chroot".
exec switch_root $R /usr/bin/env -i HOME=/root TERM=dumb \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash $OUTDIR/.inner.sh
fail "switch_root failed"
INIT
  chmod +x $T/init
  (cd $T && find . | cpio -o -H newc --quiet | gzip -1) > "$INITRD.$$.tmp" && mv "$INITRD.$$.tmp" "$INITRD"
  # drop stale images of earlier script versions (older than a day: leave concurrent runs be)
  find "$CACHE" -maxdepth 1 -name 'initrd-*.cpio.gz' ! -newer "$INITRD" -mmin +1440 -delete 2>/dev/null || true
fi

# ---- the command ------------------------------------------------------------------------
cat > "$OUT/.inner.sh" <<INNER
#!/bin/bash
# runs in the guest as PID 1 after switch_root into the host root (started by initramfs /init)
cd "$PWD" 2>/dev/null || cd "$OUT"    # the caller's cwd if the guest can see it
if [ "$SYSTEMD" = 1 ]; then
  udevadm settle -t 120 || true        # systemd started udevd
elif [ "$UDEV" = 1 ]; then   # real udev: /dev/mapper nodes, /dev/disk/by-*, kpartx rules, module autoload
  { /lib/systemd/systemd-udevd --daemon --resolve-names=never &&
    udevadm trigger --type=subsystems --action=add && udevadm trigger --type=devices --action=add &&
    udevadm settle -t 120; } > /dev/null 2>&1 || echo "PMEMVM: udev start failed"
  echo "PMEMVM: udev ready \$(cut -d' ' -f1 /proc/uptime)s"
fi
if [ -n "$NETPORT" ]; then   # -N: the card QEMU's user network forwards port 22 to
  modprobe virtio_net 2>/dev/null || true
  ifc=""; for _ in \$(seq 100); do
    ifc=\$(ls /sys/class/net | grep -v -x lo | head -1); [ -n "\$ifc" ] && break; sleep 0.1; done
  { ip link set lo up && ip link set "\$ifc" up && ip addr add 10.0.2.15/24 dev "\$ifc" &&
    ip route add default via 10.0.2.2; } || echo "PMEMVM: network setup failed (card '\$ifc')"
fi
bash "$OUT/cmd.sh" 2>&1 < /dev/null | tee "$OUT/output.log"; rc=\${PIPESTATUS[0]}
if [ -n "$PERSIST" ]; then   # -P: save the overlays' upper layers for the next boot
  for d in /etc /var /root /mnt /usr/local; do
    u=/run/pmemvm/ovl\$d/u; [ -d "\$u" ] || continue
    tar --xattrs -C "\$u" --exclude=./log/journal -cf "$PERSIST/upper-\$(echo \${d#/} | tr / +).tar.tmp" . &&
      mv "$PERSIST/upper-\$(echo \${d#/} | tr / +).tar.tmp" "$PERSIST/upper-\$(echo \${d#/} | tr / +).tar" ||
      echo "PMEMVM: saving \$d failed"
  done
fi
echo \$rc > "$OUT/rc"; echo "PMEMVM_RC=\$rc"
echo "PMEMVM: done \$(cut -d' ' -f1 /proc/uptime)s"
sync
if [ "$SYSTEMD" = 1 ]; then
  systemctl --no-block poweroff    # an orderly shutdown; the host stops QEMU if it hangs
  exit 0
fi
/bin/busybox poweroff -f    # this bash is PID 1: power off instead of exiting (exit = kernel panic)
echo o > /proc/sysrq-trigger; sleep 10
INNER
{
  echo "#!/bin/bash"
  if [ -n "$CMD_STR" ]; then printf '%s\n' "$CMD_STR"; else printf '%q ' "$@"; echo; fi
} > "$OUT/cmd.sh"

# ---- NVDIMMs ---------------------------------------------------------------------------
QEMU_NV=(); MAXMEM_MIB=0
if [ "$NDIMM" -gt 0 ]; then
  NVDIR=${KEEPDIR:-$OUT}; mkdir -p "$NVDIR"; NVDIR=$(realpath "$NVDIR")
  # backend = pmem + 2 MiB: QEMU puts the 128K label area at the END of the backend and
  # maps ALIGN_DOWN(size - label, align) as pmem, so regions stay exactly PMEM_MIB and
  # every DIMM starts 16 MiB-aligned (the kernel's default region align is 16 MiB).
  BE_MIB=$PMEM_MIB; LBL=""
  if [ $LABELS = 1 ]; then BE_MIB=$((PMEM_MIB + 2)); LBL=",label-size=128K"; fi
  # -r: each backing file keeps its slot, hence its NFIT serial number (QEMU derives it
  # from the slot) and address, so the labels on it stay valid, as a real module keeps its
  # serial. QEMU lists NVDIMMs in the NFIT by a hash of the device ids, not by position,
  # and the kernel numbers regions (and so /dev/pmemN) in NFIT order: giving the ids in
  # reverse flips the enumeration, region0/pmem0 <-> region1/pmem1.
  NVNODE=""; [ "$NUMA" = 1 ] && NVNODE=",node=1"
  for pos in $(seq 1 "$NDIMM"); do
    id=$pos; [ "$REVERSE" = 1 ] && id=$((NDIMM + 1 - pos))
    f=$NVDIR/nvdimm$pos.img
    if [ -z "$KEEPDIR" ] || [ ! -f "$f" ]; then rm -f "$f"; truncate -s ${BE_MIB}M "$f"; fi
    QEMU_NV+=(-object memory-backend-file,id=nvmem$pos,share=on,mem-path=$f,size=${BE_MIB}M,align=2M
              -device nvdimm,id=nvdimm$id,slot=$((pos - 1)),memdev=nvmem$pos$LBL$NVNODE)
    MAXMEM_MIB=$((MAXMEM_MIB + BE_MIB))
  done
fi
case $MEM in *[!0-9]*) MEM_MIB=$(numfmt --from=iec "$MEM" | awk '{print int($1/1048576)}');; *) MEM_MIB=$MEM;; esac
MEMOPT="${MEM_MIB}M"; MACHINE=q35
if [ "$NDIMM" -gt 0 ]; then MEMOPT="${MEM_MIB}M,slots=$((NDIMM+1)),maxmem=$((MEM_MIB + MAXMEM_MIB + 1024))M"; MACHINE=q35,nvdimm=on; fi
# ---- CXL memory devices (-X) -----------------------------------------------------------
QEMU_CXL=()
if [ "$NCXL" -gt 0 ]; then
  CXDIR=${KEEPDIR:-$OUT}; mkdir -p "$CXDIR"; CXDIR=$(realpath "$CXDIR")
  MACHINE="$MACHINE,cxl=on,cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G"
  # after every other device: QEMU places a device with no bus on the last bus made
  QEMU_CXL=(-device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1)
  # two root ports at least (with one, 6.1 silently drops writes), one memdev on each
  ports=$NCXL; [ "$ports" -lt 2 ] && ports=2
  for i in $(seq 0 $((ports - 1))); do
    QEMU_CXL+=(-device "cxl-rp,port=$i,bus=cxl.1,id=cxlrp$i,chassis=0,slot=$((i + 2))")
  done
  for i in $(seq 0 $((NCXL - 1))); do
    m=$CXDIR/cxl-pmem$i.raw; l=$CXDIR/cxl-lsa$i.raw
    if [ -z "$KEEPDIR" ] || [ ! -f "$m" ]; then rm -f "$m" "$l"; truncate -s 512M "$m"; truncate -s 1M "$l"; fi
    QEMU_CXL+=(-object "memory-backend-file,id=cxlmem$i,share=on,mem-path=$m,size=512M"
               -object "memory-backend-file,id=cxllsa$i,share=on,mem-path=$l,size=1M"
               -device "cxl-type3,bus=cxlrp$i,memdev=cxlmem$i,lsa=cxllsa$i,id=cxlpmem$i,sn=$((i + 1))")
  done
fi
QEMU_RAM=()
if [ "$NUMA" = 1 ]; then
  [ -n "$RAMFILE" ] && { echo "run-guest.sh: -M and -R do not go together" >&2; exit 2; }
  QEMU_RAM=(-object "memory-backend-ram,id=ram0,size=${MEM_MIB}M"
            -numa "node,nodeid=0,cpus=0-$((CPUS - 1)),memdev=ram0" -numa node,nodeid=1)
fi
if [ -n "$RAMFILE" ]; then
  [ -f "$RAMFILE" ] || truncate -s "${MEM_MIB}M" "$RAMFILE"
  # Only the memmap= ranges keep what the last boot left, as PMEM does across a warm
  # reboot; the rest of the RAM starts zeroed, as at power-on (a 6.12 guest once crashed
  # early in boot over the previous boot's RAM). Below 2816 MiB q35 maps all RAM low, so
  # a file offset is the guest physical address.
  keep_from=0
  for r in $(printf '%s\n' $KARGS | sed -n 's/^memmap=\([0-9]*[KMG]\)!\([0-9]*[KMG]\)$/\2:\1/p' | \
             while IFS=: read -r start size; do echo "$(numfmt --from=iec "$start"):$(numfmt --from=iec "$size")"; done | sort -n); do
    start=${r%%:*}; size=${r##*:}
    [ "$start" -gt "$keep_from" ] && fallocate --punch-hole --offset "$keep_from" --length $((start - keep_from)) "$RAMFILE"
    keep_from=$((start + size))
  done
  total=$(stat -c %s "$RAMFILE")
  [ "$total" -gt "$keep_from" ] && fallocate --punch-hole --offset "$keep_from" --length $((total - keep_from)) "$RAMFILE"
  QEMU_RAM=(-object "memory-backend-file,id=guestram,share=on,mem-path=$(realpath "$RAMFILE"),size=${MEM_MIB}M")
  MACHINE="$MACHINE,memory-backend=guestram"
fi

# ---- 9p shares -------------------------------------------------------------------------
SHARES=(-fsdev local,id=fsroot,path=/,security_model=none,readonly=on,multidevs=remap
        -device virtio-9p-pci,fsdev=fsroot,mount_tag=hostroot)
n=0; RWLIST=""
# mount order = shortest path first, so nested shares (e.g. -w /a with -o /a/out) both show
for d in $(printf '%s\n' "$OUT" "${RWDIRS[@]}" | awk '!seen[$0]++ {print length($0), $0}' | sort -n | cut -d' ' -f2-); do
  SHARES+=(-fsdev local,id=fsrw$n,path=$d,security_model=none,multidevs=remap
           -device virtio-9p-pci,fsdev=fsrw$n,mount_tag=rw$n)
  RWLIST="$RWLIST${RWLIST:+,}$d"
  n=$((n+1))
done

if [ -n "$PERSIST" ]; then
  SHARES+=(-fsdev local,id=fspersist,path=$PERSIST,security_model=none,multidevs=remap
           -device virtio-9p-pci,fsdev=fspersist,mount_tag=persist)
fi

NET=()
if [ -n "$NETPORT" ]; then
  NET=(-netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$NETPORT-:22" -device virtio-net-pci,netdev=net0)
fi

ACCELOPT=(-accel tcg,thread=multi -cpu max)
# 6.12 refuses to commit a CXL region under the hypervisor CPUID bit
[ "$NCXL" -gt 0 ] && ACCELOPT=(-accel tcg,thread=multi -cpu max,hypervisor=off)
[ "$ACCEL" = kvm ] && ACCELOPT=(-accel kvm -cpu host)

APPEND="console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init pmemvm.out=$OUT pmemvm.rw=$RWLIST"
[ "$SYSTEMD" = 1 ] && APPEND="$APPEND pmemvm.systemd=1 systemd.show_status=0"
# Units a minimal Debian boots that have nothing to do with storage, masked: they cost a
# TCG boot seconds (a bare boot of 6.12 on one vCPU, measured twice each way: systemd's
# userspace startup 11.8-11.9 s and 30.2 s in all without the masks, 8.2-8.6 s and
# 25.3-26.1 s with them).
# logind and dbus stay: a real host has them, and logind's mount namespace has mattered.
SD_MASKED="getty.target systemd-update-utmp.service systemd-update-utmp-runlevel.service
  systemd-user-sessions.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount
  modprobe@drm.service modprobe@fuse.service sys-fs-fuse-connections.mount dev-mqueue.mount
  dev-hugepages.mount systemd-sysusers.service systemd-journal-flush.service
  systemd-tmpfiles-clean.timer"
[ "$SYSTEMD" = 1 ] && for u in $SD_MASKED; do APPEND="$APPEND systemd.mask=$u"; done
[ -n "$PERSIST" ] && APPEND="$APPEND pmemvm.persist=1"
[ "$NCXL" -gt 0 ] && APPEND="$APPEND pcie_ports=compat"   # else 6.12's cxl_pci fails on event interrupts
[ -n "$KARGS" ] && APPEND="$APPEND $KARGS"

set +e
timeout -k 10 "$TMO" qemu-system-x86_64 -nodefaults -no-user-config -name pmemvm \
  -machine $MACHINE "${ACCELOPT[@]}" -smp "$CPUS" -m "$MEMOPT" \
  "${QEMU_RAM[@]}" "${QEMU_NV[@]}" "${SHARES[@]}" "${NET[@]}" "${QEMU_CXL[@]}" \
  -display none -vga none -monitor none -no-reboot \
  -chardev file,id=con,path="$OUT/console.log" -serial chardev:con \
  -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" \
  < /dev/null > "$OUT/qemu.log" 2>&1 &
QPID=$!
# stream the command's output (the guest writes output.log through the rw share)
( while kill -0 $QPID 2>/dev/null && [ ! -e "$OUT/output.log" ]; do sleep 0.5; done
  [ -e "$OUT/output.log" ] && exec tail -n +1 --pid=$QPID -f "$OUT/output.log" ) &
TPID=$!
if [ "$SYSTEMD" = 1 ]; then   # systemd's shutdown gets 60 s once the command has ended
  ( while kill -0 $QPID 2>/dev/null && [ ! -s "$OUT/rc" ]; do sleep 1; done
    for _ in $(seq 60); do kill -0 $QPID 2>/dev/null || exit 0; sleep 1; done
    echo "run-guest.sh: the guest did not power off within 60 s of the command's end" >&2
    kill $QPID 2>/dev/null ) &
fi
wait $QPID; QRC=$?
wait $TPID 2>/dev/null
set -e
if [ -z "$KEEPDIR" ]; then rm -f "$OUT"/nvdimm*.img; fi   # they fill with real blocks (~230 MB each/run)
if [ $QRC -eq 124 ] || [ $QRC -eq 137 ]; then
  echo "run-guest.sh: TIMEOUT after ${TMO}s; console tail:" >&2; tail -n 30 "$OUT/console.log" >&2; exit 124
fi
if [ -s "$OUT/rc" ]; then
  RC=$(cat "$OUT/rc")
  [ "$RC" != 0 ] && echo "run-guest.sh: guest command exited $RC (logs in $OUT)" >&2
  exit "$RC"
fi
RC=$(sed -n 's/.*PMEMVM_RC=\([0-9]*\).*/\1/p' "$OUT/console.log" | tail -1)
if [ -n "$RC" ] && [ "$RC" != 125 ]; then exit "$RC"; fi
echo "run-guest.sh: guest reported no exit status (qemu rc=$QRC); qemu.log + console tail:" >&2
cat "$OUT/qemu.log" >&2; tail -n 40 "$OUT/console.log" >&2
exit 125
