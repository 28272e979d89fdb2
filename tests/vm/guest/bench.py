"""The benchmark (runs INSIDE the guest; scripts/bench.sh boots it). Not a test: it
measures and prints; its only failures are a run that fails or a no-op that changes.

  bench.py main  OUT.json   2 DIMMs: striped-xfs converged from fresh DIMMs, then the no-op
                            costs: pmem_stack (and --check), the replay of just the reads it
                            makes, Ansible's Python modules run directly, and ansible-playbook
                            with each
  bench.py scale OUT.json   8 DIMMs: 1, 2, 4, 8, 16 striped ext4 stacks (2 namespaces, a dm
                            device, a filesystem and a mount each; 32 namespaces and 16 dm
                            devices at the end): no-op time and peak memory at each size
  bench.py foreign OUT.json 2 DIMMs: the striped-xfs no-op with 16 unrelated block devices
                            present (loop devices with content) against the same no-op
                            without them (also part of `main`)

With PMEM_STACK_BIN_BASELINE (an older pmem_stack, built the same way), main and scale
measure it too, in the same boot: each converge is made by the baseline and by the new
binary in turn from the same state (what one made is torn down, state: absent, before the
other runs), and the no-op runs of both alternate.

Environment: PMEM_STACK_BIN (pmem_stack as `cargo dist` builds it: static, fixed address),
PMEM_STACK_BIN_PIE (optional: the same code built as a dynamically linked PIE, for the
comparison), REPLAY (read_replay, built like PMEM_STACK_BIN), VENV (ansible venv).
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

# back to fresh DIMMs, as the kill suite does (its module, next to this one)
from kills import zero_labels as fresh_dimms

BIN = os.environ["PMEM_STACK_BIN"]
BIN_PIE = os.environ.get("PMEM_STACK_BIN_PIE", "")
BASE = os.environ.get("PMEM_STACK_BIN_BASELINE", "")
REPLAY = os.environ.get("REPLAY", "")
VENV = os.environ.get("VENV", "")
W = "/tmp/pmem-bench"
os.makedirs(W, exist_ok=True)


def log(*a):
    print(*a, flush=True)


def write_args(name, args):
    path = f"{W}/{name}.args"
    with open(path, "w") as f:
        json.dump(args, f)
    return path


def module(name, args, binary=None):
    """One run of pmem_stack (or `binary`); returns its result (and fails the benchmark
    on failure)."""
    path = write_args(name, args)
    t0 = time.perf_counter()
    p = subprocess.run([binary or BIN, path], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    try:
        r = json.loads(p.stdout)
    except ValueError:
        sys.exit(f"{name}: no JSON result (rc {p.returncode}): {p.stderr[-2000:]}")
    if r.get("failed"):
        sys.exit(f"{name}: failed: {r.get('msg')}")
    r["_outside_wall_s"] = wall
    return r


def timed(argv, n, env=None):
    """Run argv n times: seconds per run, and the peak RSS in KiB over the runs: for
    pmem_stack its own `timing.peak_rss_kib` (VmHWM), otherwise getrusage's maxrss, which
    also counts this Python's memory copied by fork before the exec (a floor of ~12 MiB:
    an upper bound, only quoted for the Python modules). argv may be a function that
    returns it (called before the clock starts)."""
    times, peak = [], 0
    make = argv if callable(argv) else (lambda: argv)
    for _ in range(n):
        argv = make()
        ours = os.path.basename(argv[0]).startswith("pmem_stack") and argv[1:] != ["--version"]
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE if ours else subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
        out = p.stdout.read() if ours else b""
        _, status, ru = os.wait4(p.pid, 0)
        times.append(time.perf_counter() - t0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            sys.exit(f"{argv}: exit status {p.returncode}")
        if ours:
            peak = max(peak, json.loads(out)["timing"]["peak_rss_kib"])
        else:
            peak = max(peak, ru.ru_maxrss)
    return times, peak


def stats(times):
    s = sorted(times)
    return {
        "n": len(s),
        "median_ms": round(statistics.median(s) * 1e3, 2),
        "p10_ms": round(s[len(s) // 10] * 1e3, 2),
        "p90_ms": round(s[(len(s) * 9) // 10 - (1 if len(s) % 10 == 0 else 0)] * 1e3, 2),
    }


def spawned(argv):
    """Programs a run starts (execve by any process but the first), from strace."""
    trace = f"{W}/spawn.trace"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", trace] + argv,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progs = re.findall(r'execve\("([^"]*)"', open(trace).read())
    return progs[1:]


# ---- the replay script: what a no-op run reads ------------------------------------------
SYSCALL = re.compile(r'^(?:\d+\s+)?(\w+)\((.*)\)\s+=\s+(-?\d+|0x[0-9a-f]+)(?:<([^>]*)>)?')
FD = re.compile(r'^(-?\d+)<([^>]*)>')


def relative_to(params, path):
    """The traced fd a call's path is relative to (its first argument, a directory the
    run opened), or None for an absolute path or one relative to the working directory."""
    fd = FD.match(params)
    if fd is None or path.startswith("/") or fd.group(1) == "-100":
        return None
    return fd.group(1)


def replay_script(args_path, out):
    """Record a no-op run with strace and write the replay script for read_replay."""
    trace = f"{W}/reads.trace"
    subprocess.run(["strace", "-f", "-qq", "-y", "-s", "0", "-X", "raw", "-e", "signal=none",
                    "-e", "trace=openat,open,read,pread64,getdents64,ioctl,close,readlink,readlinkat,statx,newfstatat,faccessat,faccessat2",
                    "-o", trace, BIN, args_path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lines, started, dm_done, skipped = [], False, False, {}
    for raw in open(trace):
        m = SYSCALL.match(raw.strip())
        if not m:
            continue
        call, params, ret, retpath = m.groups()
        if call in ("openat", "open"):
            path = re.search(r'"([^"]*)"', params)
            path = path.group(1) if path else ""
            if path == args_path:
                started = True  # main() has begun: the loader's and std's opens are before it
            if not started:
                continue
            if ret.startswith("-"):
                ret = "failed"  # a lookup that finds nothing is part of the reading too
            fl = params.split(", ")[2 if call == "openat" else 1].strip()
            if path == "/dev/mapper/control":
                if not dm_done:
                    lines.append("dm")
                    dm_done = True
                continue
            at = relative_to(params, path)
            if at is not None:
                # opened relative to a directory the run holds open (sysfs device dirs)
                lines.append(f"openat\t{ret}\t{at}\t{fl}\t{path}")
            else:
                lines.append(f"open\t{ret}\t{fl}\t{path}")
            continue
        if not started:
            continue
        if call in ("readlinkat", "statx", "newfstatat", "faccessat", "faccessat2"):
            path = re.search(r'"([^"]*)"', params)
            at = relative_to(params, path.group(1)) if path and path.group(1) else None
            if at is not None:
                kind = {"readlinkat": "readlinkat", "faccessat": "access", "faccessat2": "access"}.get(call, "statat")
                lines.append(f"{kind}\t{at}\t{path.group(1)}")
                continue
        fd = FD.match(params)
        if call in ("read", "pread64", "getdents64", "ioctl", "close") and fd:
            ident, path = fd.groups()
            if path == "/dev/mapper/control" or path.startswith("pipe:") or path.startswith("socket:"):
                continue
            parts = [p.strip() for p in params.split(",")]
            if call == "read":
                lines.append(f"read\t{ident}\t{parts[-1]}")
            elif call == "pread64":
                lines.append(f"pread\t{ident}\t{parts[-2]}\t{parts[-1]}")
            elif call == "getdents64":
                lines.append(f"getdents\t{ident}\t{parts[-1]}")
            elif call == "ioctl":
                lines.append(f"ioctl\t{ident}\t{parts[1]}")
            else:
                lines.append(f"close\t{ident}")
        elif call in ("readlink", "readlinkat", "statx", "newfstatat"):
            path = re.search(r'"([^"]*)"', params)
            if path and path.group(1):
                lines.append(("readlink" if "readlink" in call else "stat") + "\t" + path.group(1))
        else:
            skipped[call] = skipped.get(call, 0) + 1
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    counts = {}
    for l in lines:
        counts[l.split("\t")[0]] = counts.get(l.split("\t")[0], 0) + 1
    return counts


# ---- main: the no-op comparison -----------------------------------------------------------
STRIPED = {
    "namespaces": [{"name": "pm0", "region": "region0", "mode": "fsdax"},
                   {"name": "pm1", "region": "region1", "mode": "fsdax"}],
    "devices": [{"name": "pmem-striped", "target": "striped", "members": ["pm0", "pm1"], "chunk": "2M"}],
    "filesystems": [{"device": "pmem-striped", "type": "xfs", "label": "pmemfs"}],
    "mounts": [{"path": "/mnt/pmem", "device": "pmem-striped", "dax": "always", "options": ["noatime"]}],
}


def python_module(name, args):
    """argv running an Ansible Python module directly, as `python -m` (no AnsiballZ
    wrapper, no playbook; `-m` keeps the module's directory off sys.path, where
    community.general's own `pkgutil` module would shadow the standard one)."""
    a = write_args(name, {"ANSIBLE_MODULE_ARGS": args})
    return [f"{VENV}/bin/python", "-m", name, a]


def converge_report(r):
    t = r.get("timing") or {}
    wall, ext = t.get("wall_ms", 0.0), t.get("external_ms", 0.0)
    # kernel calls made on purpose (BLKZEROOUT, dm ioctls, mount): 0 from a binary that
    # does not count them
    kern = t.get("kernel_ms", 0.0)
    by = {}
    for e in t.get("external", []):
        by[e["command"]] = round(by.get(e["command"], 0.0) + e["ms"], 1)
    return {
        "steps_done": len(r.get("done", [])),
        "wall_ms": round(wall, 1),
        "external_ms": round(ext, 1),
        "outside_external_tools_ms": round(wall - ext, 1),
        "outside_external_tools_share": round((wall - ext) / wall, 4) if wall else None,
        "kernel_ms": round(kern, 1),
        "kernel_calls_ms": {k: round(v, 1) for k, v in t.get("kernel_calls_ms", {}).items()},
        # pmem_stack's own time: outside external programs and the kernel calls it asked for
        "own_ms": round(wall - ext - kern, 1),
        "own_share": round((wall - ext - kern) / wall, 4) if wall else None,
        "probes": t.get("probes"),
        "probe_ms": round(t.get("probe_ms", 0.0), 1),
        "probe_parts_ms": {k: round(v, 1) for k, v in t.get("probe_parts_ms", {}).items()},
        "external_by_command_ms": by,
        # each operation's time less its external programs: this program and the kernel
        "own_by_operation_ms": own_by_op(t.get("operations", [])),
        "own_by_phase_ms": {k: round(v, 1) for k, v in t.get("own_by_phase_ms", {}).items()},
    }


def noop_profile(args_file, n):
    """Medians over `n` no-op runs of what the result's `timing` says: the wall time, the
    probe and its parts, and this program's own time by phase (`own_by_phase_ms`)."""
    keys = {}
    for _ in range(n):
        p = subprocess.run([BIN, args_file], capture_output=True, text=True)
        t = json.loads(p.stdout).get("timing") or {}
        row = {"wall": t.get("wall_ms", 0.0), "probe": t.get("probe_ms", 0.0)}
        row.update({f"probe {k}": v for k, v in t.get("probe_parts_ms", {}).items()})
        row.update({f"own {k}": v for k, v in t.get("own_by_phase_ms", {}).items()})
        for k, v in row.items():
            keys.setdefault(k, []).append(v)
    return {k: round(statistics.median(v), 2) for k, v in keys.items()}


def own_by_op(ops):
    by = {}
    for o in ops:
        by[o["op"]] = round(by.get(o["op"], 0.0) + o["ms"] - o["external_ms"] - o.get("kernel_ms", 0.0), 1)
    return by


def warm(binary, args):
    """Before a timed converge: read `binary` once (the guest reads it from the host over
    9p; a binary Ansible copies to a host is in the page cache after the copy), and run
    it once in check mode with the same arguments, which runs the code of the start, the
    probe and the plan and changes nothing. The first run of a binary in a boot also pays
    QEMU's translation of that code (TCG): in one run, 91 ms of the first converge's 338
    ms of own time were its start, where the no-ops after it spend 3 ms."""
    with open(binary, "rb") as f:
        while f.read(1 << 20):
            pass
    subprocess.run([binary, write_args("warm", dict(args, _ansible_check_mode=True))],
                   capture_output=True)


def converge_both(tag, args, teardown, refresh=None):
    """With a baseline: converge with the baseline, tear down (`teardown`: the absent
    arguments, run by the same binary; then `refresh()`, if given, restores the starting
    point), then converge with the new binary from the same state. Returns {"baseline":
    report, "new": report} (no baseline: just "new")."""
    out = {}
    if BASE:
        warm(BASE, args)
        r = module(f"{tag}-baseline", args, BASE)
        if not r["changed"]:
            sys.exit(f"{tag}: the baseline's converge changed nothing")
        out["baseline"] = converge_report(r)
        log(f" baseline converge {tag}:", json.dumps(out["baseline"]))
        module(f"{tag}-baseline-teardown", teardown, BASE)
        if refresh:
            refresh()
    warm(BIN, args)
    r = module(tag, args)
    if not r["changed"]:
        sys.exit(f"{tag}: the converge changed nothing")
    out["new"] = converge_report(r)
    log(f" new converge {tag}:", json.dumps(out["new"]))
    return out


def main(out):
    res = {}
    log("== converge the striped-xfs stack from fresh DIMMs")
    both = converge_both("converge", STRIPED, dict(STRIPED, state="absent", allow_data_loss=True),
                         refresh=fresh_dimms)
    res["converge"] = both["new"]
    if BASE:
        res["baseline_converge"] = both["baseline"]
    log(json.dumps(res["converge"], indent=1))
    r2 = module("again", STRIPED)
    if r2["changed"]:
        sys.exit("the second run changed something")
    noop = write_args("noop", STRIPED)
    check = write_args("check", dict(STRIPED, _ansible_check_mode=True))
    res["spawns"] = {"noop": spawned([BIN, noop]), "check": spawned([BIN, check])}
    log("processes started by a no-op / a check-mode run:", res["spawns"])
    if res["spawns"]["noop"] or res["spawns"]["check"]:
        sys.exit("a no-op run started a process")

    n = int(os.environ.get("BENCH_N", "101"))
    script = f"{W}/noop.replay"
    res["replay_ops"] = replay_script(noop, script)
    log(" replay script (just the reads a no-op makes, from strace):", res["replay_ops"])
    with open(f"{W}/empty.replay", "w"):
        pass
    fresh = {"i": 0}

    def fresh_copy():
        """A new copy of the binary for each run, as Ansible copies a module to the host
        for every task: no page of it is cached, and QEMU has translated none of its code."""
        fresh["i"] += 1
        # the last run's copy goes first: 101 copies of a 4.7 MB binary do not fit in the
        # guest's /tmp (its RAM); a new file is never cached either way
        subprocess.run(["rm", "-rf", f"{W}/fresh"], check=True)
        path = f"{W}/fresh/{fresh['i']}/pmem_stack"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        subprocess.run(["cp", BIN, path], check=True)
        return [path, noop]

    # round robin, so that drift (background kernel work after the converge) hits all alike
    runs = {
        "pmem_stack_noop": [BIN, noop],
        "pmem_stack_check": [BIN, check],
        "pmem_stack_noop_fresh_copy": fresh_copy,
        "read_replay": [REPLAY, script],
        "floor: pmem_stack --version": [BIN, "--version"],
        "floor: read_replay of nothing": [REPLAY, f"{W}/empty.replay"],
        "floor: /bin/true": ["/bin/true"],
    }
    if BASE:
        runs["baseline_noop"] = [BASE, noop]
    if BIN_PIE:
        pie = f"{W}/pie/pmem_stack"
        os.makedirs(os.path.dirname(pie), exist_ok=True)
        subprocess.run(["cp", BIN_PIE, pie], check=True)
        runs["pmem_stack_noop_pie"] = [pie, noop]
    log(f"== no-op costs, {n} rounds over {len(runs)} commands")
    times = {k: [] for k in runs}
    peaks = {k: 0 for k in runs}
    for _ in range(n):
        for k, argv in runs.items():
            t, rss = timed(argv, 1)
            times[k] += t
            peaks[k] = max(peaks[k], rss)
    for k in runs:
        res[k] = stats(times[k])
        if k.startswith("pmem_stack") or k == "baseline_noop":
            res[k]["peak_rss_kib"] = peaks[k]
        log(f" {k}", res[k])
    subprocess.run(["rm", "-rf", f"{W}/fresh"], check=True)
    res["noop_profile"] = noop_profile(noop, min(n, 31))
    log(" where a no-op's own time goes (medians):", res["noop_profile"])

    res["foreign_devices"] = foreign_devices(n)

    log("== Ansible's Python modules, run directly (the lower bound of what Ansible runs)")
    env = dict(os.environ)
    chain = {
        "community.general.filesystem": python_module(
            "ansible_collections.community.general.plugins.modules.filesystem",
            {"fstype": "xfs", "dev": "/dev/mapper/pmem-striped"}),
        "ansible.posix.mount": python_module(
            "ansible_collections.ansible.posix.plugins.modules.mount",
            {"path": "/mnt/pmem", "src": "/dev/mapper/pmem-striped", "fstype": "xfs",
             "opts": "noatime,dax=always", "state": "mounted"}),
        "ansible.builtin.command (dmsetup table)": python_module(
            "ansible.modules.command", {"argv": ["dmsetup", "table", "pmem-striped"]}),
    }
    # the mount module adds the fstab line on its first run; after that it is a no-op
    for name, argv in chain.items():
        p = subprocess.run(argv, capture_output=True, text=True, env=env)
        log(f" first run of {name}: rc {p.returncode} {p.stdout.strip()[:160]}")
        if p.returncode != 0:
            sys.exit(f"{name} failed: {p.stdout[-1000:]} {p.stderr[-1000:]}")
    np_ = int(os.environ.get("BENCH_N_PY", "11"))
    res["python_modules"] = {}
    for name, argv in chain.items():
        t, rss = timed(argv, np_, env=env)
        res["python_modules"][name] = dict(stats(t), peak_rss_kib=rss)
        log(f" {name}", res["python_modules"][name])
    chain_ms = sum(v["median_ms"] for v in res["python_modules"].values())
    res["python_chain_median_ms"] = round(chain_ms, 1)

    log("== through ansible-playbook (connection local)")
    lib = f"{W}/library"
    os.makedirs(lib, exist_ok=True)
    subprocess.run(["cp", BIN, f"{lib}/pmem_stack"], check=True)
    pb_env = dict(os.environ, ANSIBLE_LIBRARY=lib, ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_RETRY_FILES_ENABLED="0",
                  ANSIBLE_PYTHON_INTERPRETER=f"{VENV}/bin/python")
    ours = [{"hosts": "all", "gather_facts": False, "tasks": [{"name": "pmem", "pmem_stack": STRIPED}]}]
    theirs = [{"hosts": "all", "gather_facts": False, "tasks": [
        {"name": "fs", "community.general.filesystem": {"fstype": "xfs", "dev": "/dev/mapper/pmem-striped"}},
        {"name": "mount", "ansible.posix.mount": {"path": "/mnt/pmem", "src": "/dev/mapper/pmem-striped",
                                                  "fstype": "xfs", "opts": "noatime,dax=always", "state": "mounted"}},
        {"name": "table", "ansible.builtin.command": {"argv": ["dmsetup", "table", "pmem-striped"]}, "changed_when": False},
    ]}]
    nb = int(os.environ.get("BENCH_N_PLAYBOOK", "5"))
    res["playbook"] = {}
    for name, play in (("pmem_stack", ours), ("python_modules", theirs)):
        path = f"{W}/{name}.yml"
        with open(path, "w") as f:
            json.dump(play, f)  # JSON is YAML
        argv = [f"{VENV}/bin/ansible-playbook", "-i", "localhost,", "-c", "local", path]
        p = subprocess.run(argv, capture_output=True, text=True, env=pb_env)
        recap = [l for l in p.stdout.splitlines() if "ok=" in l]
        log(f" {name}: rc {p.returncode} {recap}")
        if p.returncode != 0 or not recap or "changed=0" not in recap[-1]:
            sys.exit(f"playbook {name} is not a no-op: {p.stdout[-3000:]}")
        t, _ = timed(argv, nb, env=pb_env)
        res["playbook"][name] = stats(t)
        log(f" {name}", res["playbook"][name])

    noop_ms = res["pmem_stack_noop"]["median_ms"]
    res["ratios"] = {
        "python_chain / pmem_stack_noop": round(chain_ms / noop_ms, 1),
        "python_chain / pmem_stack_check": round(chain_ms / res["pmem_stack_check"]["median_ms"], 1),
        "python_chain / pmem_stack_noop_fresh_copy": round(chain_ms / res["pmem_stack_noop_fresh_copy"]["median_ms"], 1),
        "pmem_stack_noop / read_replay": round(noop_ms / res["read_replay"]["median_ms"], 2),
        **({"baseline_noop / read_replay": round(res["baseline_noop"]["median_ms"] / res["read_replay"]["median_ms"], 2),
            "pmem_stack_noop / baseline_noop": round(noop_ms / res["baseline_noop"]["median_ms"], 3)}
           if BASE else {}),
        "playbook(python modules) / playbook(pmem_stack)":
            round(res["playbook"]["python_modules"]["median_ms"] / res["playbook"]["pmem_stack"]["median_ms"], 2),
    }
    if BIN_PIE:
        res["ratios"]["python_chain / pmem_stack_noop_pie"] = round(chain_ms / res["pmem_stack_noop_pie"]["median_ms"], 1)
    log("== ratios", json.dumps(res["ratios"], indent=1))
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


# ---- foreign: the no-op with unrelated block devices present -----------------------------
FOREIGN_DEVICES = 16


def foreign_images(k):
    """k 16 MiB image files with content, as a host's unrelated disks: ext4 on the even
    ones, a GPT with one partition (and random bytes) on the odd ones."""
    imgs = []
    for i in range(k):
        img = f"{W}/foreign{i}.img"
        with open(img, "wb") as f:
            f.write(os.urandom(16 << 20))
        if i % 2:
            subprocess.run(["sgdisk", "-n", "1:2048:+8M", "-c", f"1:other{i}", img], check=True,
                           stdout=subprocess.DEVNULL)
        else:
            subprocess.run(["mkfs.ext4", "-q", "-F", "-L", f"other{i}", img], check=True)
        imgs.append(img)
    return imgs


def loops_up(imgs):
    devs = [subprocess.run(["losetup", "-f", "--show", "-P", img], check=True, capture_output=True,
                           text=True).stdout.strip() for img in imgs]
    subprocess.run(["udevadm", "settle"], check=False)
    return devs


def loops_down(devs):
    subprocess.run(["losetup", "-d"] + devs, check=True)
    subprocess.run(["udevadm", "settle"], check=False)


def listed_blocks():
    f = json.loads(subprocess.run([BIN, "--facts"], capture_output=True, text=True).stdout)
    return len(f["ansible_facts"]["pmem_stack"]["block_devices"])


def foreign_devices(n):
    """The striped-xfs no-op (converged already) without and with 16 loop devices with
    content present, in four alternating blocks (without, with, without, with) so that
    drift hits both alike. A run never opens them (the probe's scope): the cost is listing
    them in sysfs."""
    subprocess.run(["modprobe", "-q", "loop"], check=False)
    noop = write_args("noop", STRIPED)
    imgs = foreign_images(FOREIGN_DEVICES)
    times = {"without": [], "with": []}
    listed = {}
    per = max(1, n // 2)
    for block in ("without", "with", "without", "with"):
        devs = loops_up(imgs) if block == "with" else []
        listed[block] = listed_blocks()
        r = module(f"noop-{block}", STRIPED)
        loop_warnings = [w for w in r.get("warnings", []) if "/dev/loop" in w]
        if r["changed"] or loop_warnings:
            sys.exit(f"the no-op {block} the loop devices changed something or warned: {loop_warnings}")
        for _ in range(per):
            t, _ = timed([BIN, noop], 1)
            times[block] += t
        if devs:
            loops_down(devs)
    for img in imgs:
        os.remove(img)
    res = {
        "devices": FOREIGN_DEVICES,
        "block_devices_listed": listed,
        "without": stats(times["without"]),
        "with": stats(times["with"]),
    }
    res["ratio_with_over_without"] = round(res["with"]["median_ms"] / res["without"]["median_ms"], 3)
    log(f"== no-op with {FOREIGN_DEVICES} unrelated block devices (loop devices with content) present")
    log(f" block devices listed: {listed}")
    log(f" without: median {res['without']['median_ms']} ms ({res['without']})")
    log(f" with:    median {res['with']['median_ms']} ms ({res['with']})")
    log(f" ratio with / without: {res['ratio_with_over_without']}")
    return res


def foreign(out):
    r = module("converge", STRIPED)
    if not r["changed"]:
        sys.exit("the converge changed nothing: not from fresh DIMMs?")
    res = {"foreign_devices": foreign_devices(int(os.environ.get("BENCH_N", "101")))}
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


# ---- scale: 8 DIMMs, up to 32 namespaces and 16 dm devices ------------------------------------
def scale_args(k, first=0):
    """Stacks first..k-1."""
    ns, dev, fs, mnt = [], [], [], []
    for i in range(first, k):
        a, b = 2 * i, 2 * i + 1
        for j in (a, b):
            ns.append({"name": f"n{j}", "region": f"region{j % 8}", "mode": "fsdax", "size": "112M"})
        dev.append({"name": f"s{i}", "target": "striped", "members": [f"n{a}", f"n{b}"], "chunk": "2M"})
        fs.append({"device": f"s{i}", "type": "ext4"})
        mnt.append({"path": f"/mnt/s{i}", "device": f"s{i}", "dax": "always"})
    return {"namespaces": ns, "devices": dev, "filesystems": fs, "mounts": mnt}


def count_objects():
    f = json.loads(subprocess.run([BIN, "--facts"], capture_output=True, text=True).stdout)
    a = f["ansible_facts"]["pmem_stack"]
    return {k: len(a.get(k, [])) for k in ("namespaces", "block_devices", "dm_devices", "filesystems", "mounts")}


def fit(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    ss = sum((y - my) ** 2 for y in ys)
    r2 = 1 - sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys)) / ss if ss else 1.0
    return round(a, 3), round(b, 3), round(r2, 4)


def scale(out):
    # label areas initialised: a region holds several namespaces
    subprocess.run(["bash", "-c", "ndctl disable-region all >/dev/null && ndctl init-labels -f all >/dev/null"
                    " && ndctl enable-region all >/dev/null"], check=True)
    n = int(os.environ.get("BENCH_N", "31"))
    rows = []
    prev = 0
    for k in (1, 2, 4, 8, 16):
        args = scale_args(k)
        # the baseline adds stacks prev..k-1, which are taken away again before the new
        # binary adds them: both converge from the same state
        teardown = dict(scale_args(k, prev), state="absent", allow_data_loss=True)
        both = converge_both(f"scale{k}", args, teardown)
        prev = k
        conv = both["new"]
        again = module(f"scale{k}-again", args)
        if again["changed"]:
            sys.exit(f"k={k}: the second run changed something")
        path = write_args(f"scale{k}-noop", args)
        sp = spawned([BIN, path])
        if sp:
            sys.exit(f"k={k}: a no-op started {sp}")
        t, bt, rss, brss = [], [], 0, 0
        for _ in range(n):  # alternating, so that drift hits both alike
            x, r_ = timed([BIN, path], 1)
            t += x
            rss = max(rss, r_)
            if BASE:
                x, r_ = timed([BASE, path], 1)
                bt += x
                brss = max(brss, r_)
        objs = count_objects()
        row = {"stacks": k, "objects": objs, "declared": 5 * k, "converge": conv,
               "noop": stats(t), "noop_peak_rss_kib": rss}
        if BASE:
            row.update(baseline_converge=both["baseline"], baseline_noop=stats(bt), baseline_noop_peak_rss_kib=brss)
        rows.append(row)
        log(json.dumps(row))
    xs = [sum(r["objects"].values()) for r in rows]
    a, b, r2 = fit(xs, [r["noop"]["median_ms"] for r in rows])
    ma, mb, mr2 = fit(xs, [r["noop_peak_rss_kib"] for r in rows])
    res = {"rows": rows,
           "noop_ms_fit": {"intercept_ms": a, "ms_per_object": b, "r2": r2},
           "rss_kib_fit": {"intercept_kib": ma, "kib_per_object": mb, "r2": mr2}}
    if BASE:
        a, b, r2 = fit(xs, [r["baseline_noop"]["median_ms"] for r in rows])
        res["baseline_noop_ms_fit"] = {"intercept_ms": a, "ms_per_object": b, "r2": r2}
    log(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1))
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    {"main": main, "scale": scale, "foreign": foreign}[sys.argv[1]](sys.argv[2])
