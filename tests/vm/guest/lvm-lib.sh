# Sourced by the LVM boots (lvm-1.sh, lvm-2.sh): systemd is PID 1, lvm2 is installed
# (its udev rules scan every new block device and activate complete VGs), the guest's
# writes to its root are kept between the boots, the test's own notes go to $KEEP.
source "$(dirname "$0")/boot-lib.sh"
NS2='[{"name":"pm0","region":"region0","mode":"fsdax"},{"name":"pm1","region":"region1","mode":"fsdax"}]'
NS3='[{"name":"pm0","region":"region0","mode":"fsdax"},{"name":"pm1","region":"region1","mode":"fsdax"},{"name":"pm2","region":"region2","mode":"fsdax"}]'
# the persisted stack: a striped LV (2 stripes of 2 MiB) over pm0 and pm1, xfs, DAX on /mnt/s
ARGS_S="{\"namespaces\":$NS2,\"volume_groups\":[{\"name\":\"vgp\",\"pvs\":[\"pm0\",\"pm1\"]}],
\"logical_volumes\":[{\"name\":\"lvs\",\"vg\":\"vgp\",\"stripes\":2}],
\"filesystems\":[{\"device\":\"vgp/lvs\",\"type\":\"xfs\"}],
\"mounts\":[{\"path\":\"/mnt/s\",\"device\":\"vgp/lvs\",\"dax\":\"always\"}],\"boot\":{\"persist\":true}}"
# the kernel device (namespaceR.N) of the namespace named $1
ns_dev() { ndctl list -N | python3 -c "import json,sys; d=json.load(sys.stdin); d=d if isinstance(d,list) else [d]; print(([n.get('dev','') for n in d if n.get('name')=='$1'] or [''])[0])"; }
# what LVM reports (its own tools, not the module)
lvm_report() { lvm "$@" --reportformat json --units b --nosuffix 2>/dev/null; }
pe_starts() { lvm pvs --noheadings -o pv_name,pe_start --units b --nosuffix 2>/dev/null | awk '{print $1 "=" $2}' | sort | tr '\n' ' '; }
lv_field() { lvm lvs --noheadings -o "$2" --units b --nosuffix "$1" 2>/dev/null | tr -d ' '; }
# the kernel name (dm-N) of an LV's dm device, and its largest I/O
lv_kname() { basename "$(readlink -f "/dev/$1")"; }
lv_max_kb() { cat "/sys/block/$(lv_kname "$1")/queue/max_sectors_kb"; }
# the layers of a result's DAX audit that do not allow 2 MiB faults, comma-separated
bad_layers() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(",".join(l["layer"] for m in d.get("dax_audit",{}).get("mounts",[]) for l in m["layers"] if not l["pmd_ok"]))' "$1"; }
# every layer of a result's DAX audit, one line each
layers() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); [print("   %-10s %-5s %-24s %s %s" % (l["layer"], "ok" if l["pmd_ok"] else "NO", l["object"], l["found"], ("  fix: " + l["fix"]) if l.get("fix") else "")) for m in d.get("dax_audit",{}).get("mounts",[]) for l in m["layers"]]' "$1"; }
# Ansible runs playbooks/lvm-striped-xfs.yml (play, recap)
PLAYBOOK=lvm-striped-xfs.yml
source "$HERE/play-lib.sh"
