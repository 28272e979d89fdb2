#!/usr/bin/env python3
"""VM suite: SIGKILL in the middle of a step (runs INSIDE the guest, 2 DIMMs).

A converge of the striped-xfs recipe with boot persistence is killed after a delay swept
from 0.05 s to past its end, and the delays include the middle of every operation and
every external program of a reference run from the same starting point (from the
result's timing), and the stretches of the module's own work between them, so that
every step, tool and wait is hit mid-way. Two starting points:
  fresh:     label-less DIMMs (labels zeroed) still holding the previous stack's data;
  leftovers: the namespaces of a converged stack destroyed (state: absent with
             allow_data_loss), their old xfs still on the media.
After each kill the module is run again and must converge: rc 0, then a run with
changed false; no stray dm device; exactly the namespaces pm0 and pm1, none disabled
or nameless; no uncleared marker or half-written file; the xfs mounted with dax=always
is a new one (never a filesystem from before the teardown) and it mounts.
Only a kill that hit a live run counts (the run had not ended, and it died of the
SIGKILL); every kind of operation of the reference run that lasts long enough to aim at
(50 ms) must have been hit at least once from each starting point. A kill that left a program the run started (ndctl, mkfs)
running as an orphan is followed at once by a run that may not wait for the lock: it
must be refused, naming the lock, while the orphan lives.
Prints how many kills hit each operation and each external program, and ends with SUMMARY.
"""
import json
import os
import signal
import subprocess
import sys
import time

BIN = os.environ["PMEM_STACK_BIN"]
W = os.environ.get("W", "/tmp/pmem-stack-vm")
ROOT = os.path.join(W, "root")
ENV = dict(os.environ, PMEM_STACK_ROOT=ROOT, PMEM_STACK_LOCK_WAIT="300")
GRID = float(os.environ.get("KILL_GRID", "0.5"))
MAX_KILLS = int(os.environ.get("KILL_MAX", "10"))
AIM_MS = 50
ATTEMPTS = 4
ARGS = {
    "namespaces": [
        {"name": "pm0", "region": "region0", "mode": "fsdax"},
        {"name": "pm1", "region": "region1", "mode": "fsdax"},
    ],
    "devices": [{"name": "pmem-striped", "target": "striped", "members": ["pm0", "pm1"], "chunk": "2M"}],
    "filesystems": [{"device": "pmem-striped", "type": "xfs", "label": "pmemfs"}],
    "mounts": [{"path": "/mnt/pmem", "device": "pmem-striped", "dax": "always"}],
    "boot": {"persist": True},
}
DESTROY = dict(ARGS, state="absent", allow_data_loss=True)
PASS = FAIL = 0


def check(desc, ok, detail=""):
    global PASS, FAIL
    if ok:
        PASS += 1
        print("CHECK PASS: " + desc)
    else:
        FAIL += 1
        print("CHECK FAIL: " + desc + (" -- " + detail if detail else ""))
    sys.stdout.flush()


def out(*argv):
    return subprocess.run(argv, capture_output=True, text=True).stdout


def write_args(name, args):
    path = os.path.join(W, name + ".args")
    with open(path, "w") as f:
        json.dump(args, f)
    return path


def module(name, args):
    """Run the module to the end; (rc, result or None)."""
    p = subprocess.run([BIN, write_args(name, args)], capture_output=True, text=True, env=ENV)
    try:
        r = json.loads(p.stdout)
    except ValueError:
        r = None
    return p.returncode, r


def children(pid):
    """(pid, command name) of the processes whose parent is `pid`: from the kernel's
    list of the process's children (one read, so that the kill is not late), or by a
    walk over /proc where the kernel keeps no such list."""
    try:
        kids = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
    except OSError:
        kids = None
    if kids is not None:
        names = []
        for k in kids:
            try:
                stat = open("/proc/%s/stat" % k).read()
            except OSError:
                continue
            names.append((int(k), stat[stat.index("(") + 1:stat.rindex(")")]))
        return names
    names = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == pid:
            names.append((int(d), comm))
    return names


def alive(pid):
    """Whether `pid` is a live process (not a zombie)."""
    try:
        stat = open("/proc/%d/stat" % pid).read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def namespaces():
    text = out("ndctl", "list", "-N", "-i")
    d = json.loads(text) if text.strip() else []
    return d if isinstance(d, list) else [d]


def dm_names():
    return sorted(l.split()[0] for l in out("dmsetup", "ls").splitlines() if len(l.split()) == 2)


def mounted_xfs():
    """(uuid, dax option) of what is mounted at /mnt/pmem, or None."""
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        if f[4] == "/mnt/pmem":
            dax = [o for o in (f[5] + "," + f[-1]).split(",") if o.startswith("dax")]
            uuid = out("blkid", "-p", "-o", "value", "-s", "UUID", "/dev/mapper/pmem-striped").strip()
            return uuid, ",".join(dax)
    return None


def half_written():
    found = []
    for d, _, files in os.walk(ROOT):
        for f in files:
            if ".pmem-stack." in f:
                found.append(os.path.join(d, f))
    clearing = os.path.join(ROOT, "var/lib/pmem-stack/clearing")
    if os.path.isdir(clearing) and os.listdir(clearing):
        found.append("uncleared markers: " + " ".join(os.listdir(clearing)))
    states = os.path.join(ROOT, "etc/pmem-stack/state.d")
    for name in sorted(os.listdir(states)) if os.path.isdir(states) else []:
        try:
            json.load(open(os.path.join(states, name)))
        except ValueError:
            found.append("state.d/%s is not whole JSON" % name)
    binary = os.path.join(ROOT, "usr/local/libexec/pmem-stack/pmem_stack")
    if os.path.exists(binary) and open(binary, "rb").read() != open(BIN, "rb").read():
        found.append("the installed binary is not whole")
    return found


def teardown(tag):
    rc, r = module(tag + ".destroy", DESTROY)
    ok = rc == 0 and not dm_names() and not any(n.get("size", 0) for n in namespaces())
    if not ok:
        # leave the next case a clean start whatever happened, and say so
        check("%s: torn down by absent + allow_data_loss" % tag, False, r and r.get("msg") or "rc %s" % rc)
        subprocess.run(["umount", "-l", "/mnt/pmem"], capture_output=True)
        subprocess.run(["dmsetup", "remove_all", "-f"], capture_output=True)
        subprocess.run(["ndctl", "destroy-namespace", "all", "-f"], capture_output=True)


def zero_labels():
    """Back to fresh DIMMs: labels zeroed and the NVDIMM drivers loaded again, so the
    DIMMs are probed anew and, their label areas holding no index, are label-less as on
    the first boot (re-enabling the DIMMs alone keeps them labelled); the data stays."""
    for argv in (["ndctl", "disable-region", "all"], ["ndctl", "zero-labels", "all"],
                 ["modprobe", "-r", "dax_pmem", "nd_pmem", "nd_btt", "nfit"],
                 ["modprobe", "-r", "libnvdimm"],
                 ["modprobe", "nfit"], ["modprobe", "nd_pmem"], ["modprobe", "nd_btt"],
                 ["modprobe", "dax_pmem"], ["udevadm", "settle"]):
        subprocess.run(argv, capture_output=True)


def label_less():
    ns = [n for n in namespaces() if n.get("size", 0)]
    return len(ns) == 2 and all(n.get("mode") == "raw" and "name" not in n for n in ns)


def windows(result):
    """(start, end, label, kind) of each operation and each external program, in ms."""
    t = result["timing"]
    done = result["done"]
    ops = [(o["start_ms"], o["start_ms"] + o["ms"], "step %s %s" % (done[i]["action"], done[i]["target"]) if i < len(done) else o["op"], "op " + o["op"])
           for i, o in enumerate(t["operations"])]
    tools = [(x["start_ms"], x["start_ms"] + x["ms"], "tool " + x["command"], "tool " + x["command"]) for x in t["external"]]
    return ops, tools, t["wall_ms"]


def where(ms, wins):
    """The window (label, kind) the instant `ms` falls in, if any."""
    for a, b, label, kind in wins:
        if a <= ms <= b:
            return label, kind
    return None


HITS = {}
KINDS = {}
KILLED = [0]
ORPHANS = {"refused": 0, "inconclusive": 0}
T0 = time.time()


def realtime(on):
    """This process under SCHED_FIFO (on) or back to the normal policy."""
    if on:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    else:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def start_over(tag, i):
    """Back to the starting point `tag`: the stack torn down (and for `fresh`, the
    labels zeroed)."""
    teardown("%s%s" % (tag, i))
    if tag == "fresh":
        zero_labels()
        if not label_less():
            check("%s %s: back to label-less DIMMs" % (tag, i), False, json.dumps(namespaces()))


def remap(ms, ref, result):
    """The instant of `result`'s timeline that matches `ms` of the reference run's:
    the same place within the same operation (or the same stretch between two), by
    linear interpolation between the operations' edges; by the ratio of the wall times
    when the two runs did not do the same operations."""
    ops, _, ref_wall = ref
    act, _, act_wall = windows(result)
    if [w[2] for w in act] != [w[2] for w in ops] or ref_wall <= 0:
        return ms * act_wall / ref_wall if ref_wall > 0 else ms
    xs = [0.0] + [e for a, b, _, _ in ops for e in (a, b)] + [ref_wall]
    ys = [0.0] + [e for a, b, _, _ in act for e in (a, b)] + [act_wall]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x0 <= ms <= x1:
            return y0 + (ms - x0) * (y1 - y0) / (x1 - x0) if x1 > x0 else y0
    return ms * act_wall / ref_wall


def kill_case(tag, i, delay, ref, old_uuids):
    """Kill a converge from `tag` at `delay` s, aimed by the reference run's timeline.
    A run that ended before the kill (it went faster than the reference run) is no
    kill: the aim moves to the same place in that run's own timeline (see `remap`), and
    the case starts over, up to three times."""
    ops, tools, ref_wall = ref
    aim = delay
    for attempt in range(ATTEMPTS):
        start_over(tag, i)
        out_path = os.path.join(W, "%s.kill%d.%d.json" % (tag, i, attempt))
        args = write_args("%s.kill%d" % (tag, i), ARGS)
        with open(out_path, "w") as result:
            p = subprocess.Popen([BIN, args], stdout=result, stderr=subprocess.DEVNULL, env=ENV)
            t_start = time.monotonic()
            # the guest has one vCPU: without a real-time priority this process wakes
            # only when the module gives the CPU up, late (a CPU-bound write of the
            # binary took the kill past the end of the run); the module and the
            # programs it starts keep the normal policy (set after the fork)
            realtime(True)
            time.sleep(max(0.0, delay - (time.monotonic() - t_start)))
            kids = children(p.pid)
            live = p.poll() is None
            if live:
                p.send_signal(signal.SIGKILL)
            late = (time.monotonic() - t_start - delay) * 1000
            realtime(False)
            rc = p.wait()
        if late > 20:
            print("  (%s kill %d: the kill came %.0f ms after its aim)" % (tag, i, late))
        if live and rc == -signal.SIGKILL:
            break
        try:
            ended = json.load(open(out_path))
            wall = ended["timing"]["wall_ms"]
            again = remap(aim * 1000, ref, ended) / 1000
        except (ValueError, KeyError, TypeError, OSError, IndexError):
            break
        if attempt < ATTEMPTS - 1:
            print("  (%s kill %d at %.2f s: the run had ended, in %.0f ms against the reference's %.0f: aiming again at %.2f s)" % (
                tag, i, delay, wall, ref_wall, again))
            delay = round(again, 3)
    # attributed by where the aim falls in the reference run's timeline
    ms = aim * 1000
    op = where(ms, ops)
    step = op[0] if op else ("after the run" if ms > ops[-1][1] else "between steps (probe, plan)")
    tool = where(ms, tools)
    killed = live and rc == -signal.SIGKILL
    if killed:
        KILLED[0] += 1
        # only a kill that hit a live run counts: by the reference run's timeline for the
        # operation, and by the programs seen running for the tools
        for k in [op[1] if op else step] + ["ran " + c for _, c in kids]:
            HITS[(tag, k)] = HITS.get((tag, k), 0) + 1
    print("--- %s kill %d at %.2f s (aimed at %.2f s of the reference run): %s%s; running then: %s; %s (%.0f s into the suite)" % (
        tag, i, delay, aim, step, (", " + tool[0]) if tool else "", " ".join(c for _, c in kids) or "-",
        "killed" if killed else "NOT A KILL: the run had ended (rc %s)" % rc, time.time() - T0))
    orphans = [(pid, c) for pid, c in kids if alive(pid)]
    if killed and orphans:
        # the orphan still holds the run's lock: a run that may not wait is refused
        # while it lives (if it ended before the answer, nothing can be concluded)
        env0 = dict(ENV, PMEM_STACK_LOCK_WAIT="0")
        p0 = subprocess.run([BIN, write_args("%s.lock%d" % (tag, i), ARGS)], capture_output=True, text=True, env=env0)
        still = [c for pid, c in orphans if alive(pid)]
        try:
            msg0 = json.loads(p0.stdout).get("msg", "")
        except ValueError:
            msg0 = p0.stdout
        if still:
            ORPHANS["refused"] += 1
            check("%s %.2f s: with %s left running by the kill, a run that may not wait is refused, naming the lock" % (tag, delay, " ".join(still)),
                  p0.returncode == 1 and "or a program it started that is still running, is working" in msg0, "rc %s: %s" % (p0.returncode, msg0))
        else:
            ORPHANS["inconclusive"] += 1
            print("  (the orphan %s ended before the run without waiting answered: no conclusion)" % " ".join(c for _, c in orphans))
    rc, r = module("%s.re%d" % (tag, i), ARGS)
    msg = (r or {}).get("msg", "")
    check("%s %.2f s: the re-run converges (rc 0)" % (tag, delay), rc == 0, "rc %s: %s" % (rc, msg))
    rc2, r2 = module("%s.again%d" % (tag, i), ARGS)
    check("%s %.2f s: the next run is unchanged" % (tag, delay),
          rc2 == 0 and r2 is not None and r2.get("changed") is False,
          "rc %s changed %s: %s" % (rc2, (r2 or {}).get("changed"), [s["action"] for s in (r2 or {}).get("plan", [])]))
    check("%s %.2f s: no stray dm device" % (tag, delay), dm_names() == ["pmem-striped"], str(dm_names()))
    ns = [n for n in namespaces() if n.get("size", 0)]
    bad = [n for n in ns if n.get("state") == "disabled" or n.get("name") not in ("pm0", "pm1")]
    check("%s %.2f s: namespaces pm0 and pm1 only, none disabled or nameless" % (tag, delay),
          sorted(n.get("name", "") for n in ns) == ["pm0", "pm1"] and not bad, json.dumps(ns))
    hw = half_written()
    check("%s %.2f s: no half-written file or uncleared marker" % (tag, delay), not hw, " ".join(hw))
    m = mounted_xfs()
    check("%s %.2f s: a new xfs (not one from before) mounted with dax=always" % (tag, delay),
          m is not None and m[1] == "dax=always" and m[0] and m[0] not in old_uuids, "%s, old: %s" % (m, sorted(old_uuids)))
    if m:
        old_uuids.add(m[0])


def delays(ref):
    """From 0.05 s to past the end: a grid, the middle of every operation and program
    of the reference run, and the quarters of the long ones; at most MAX_KILLS (the
    timeline is the reference run's: under load it stretches, and so would the suite)."""
    ops, tools, wall = ref
    end = wall / 1000 + 0.3
    grid = max(GRID, end / 10)
    long_window = max(300, wall / 8)
    # the middle of the longest window of every kind of operation and program: always
    # kept, whatever the thinning below drops
    longest = {}
    for a, b, _, kind in ops + tools:
        if kind not in longest or b - a > longest[kind][1] - longest[kind][0]:
            longest[kind] = (a, b)
    must = {round((a + b) / 2000, 3) for a, b in longest.values()}
    aimed = set()
    for a, b, _, _ in ops + tools:
        # the middle of every window, and its quarters when it is long enough to aim at
        for f in (0.5,) if b - a < long_window else (0.25, 0.5, 0.75):
            aimed.add(round((a + f * (b - a)) / 1000, 3))
    # inside an operation, the stretches between its programs are this program's own
    # work (clearing a namespace's ends, dm ioctls, waits): aim at those too
    for a, b, _, _ in ops:
        edges = sorted((max(a, ta), min(b, tb)) for ta, tb, _, _ in tools if ta < b and tb > a)
        at = a
        for ta, tb in edges + [(b, b)]:
            if ta - at > 50:
                aimed.add(round((at + ta) / 2000, 3))
            at = max(at, tb)
    ds = set(aimed) | {0.05, round(end, 3)}
    t = 0.05
    while t < end:
        ds.add(round(t, 3))
        t += grid
    kept = []
    for d in sorted(ds - must):
        if not kept or d - kept[-1] > 0.08:
            kept.append(d)
    room = max(0, MAX_KILLS - len(must))
    if len(kept) > room:
        step = len(kept) / room if room else 0
        kept = [kept[int(i * step)] for i in range(room)]
    return sorted(set(kept) | must)


def main():
    t0 = time.time()
    os.makedirs(W, exist_ok=True)
    for m in ("nfit", "nd_pmem", "dm-mod", "dm-striped", "xfs"):
        subprocess.run(["modprobe", "-q", m])
    subprocess.run(["udevadm", "settle"])
    check("the DIMMs start label-less", label_less(), json.dumps(namespaces()))

    old = set()
    total = 0
    for tag in ("fresh", "leftovers"):
        print("\n=== kills over %s" % tag)
        # a reference run from this starting point: its timeline places the kills (the
        # first boot's DIMMs are fresh; leftovers: the stack just converged, torn down)
        if tag == "leftovers":
            teardown("ref-" + tag)
        # the timeline is the second run's from the same starting point: the first one
        # reads the binary it installs through the guest's cold cache (seconds longer)
        for n, name in enumerate(("ref-", "ref2-")):
            if n:
                start_over(tag, "-ref")
            rc, ref_result = module(name + tag, ARGS)
            check("%s: reference converge %d (rc 0)" % (tag, n + 1), rc == 0 and ref_result is not None,
                  (ref_result or {}).get("msg", ""))
            if rc != 0 or ref_result is None:
                return summary(t0)
            m = mounted_xfs()
            if m:
                old.add(m[0])
        ref = windows(ref_result)
        for a, b, label, _ in ref[0]:
            print("  op   %7.0f-%7.0f ms  %s" % (a, b, label))
        for a, b, label, _ in ref[1]:
            print("  tool %7.0f-%7.0f ms  %s" % (a, b, label))
        # the kinds of operation a kill can be aimed at: those with a window of at least
        # AIM_MS; shorter ones (a unit file written in 1 ms) are left to faults.sh, which
        # kills the module after every step
        longest = {}
        for a, b, _, kind in ref[0]:
            longest[kind] = max(longest.get(kind, 0), b - a)
        KINDS[tag] = sorted(k for k, ms in longest.items() if ms >= AIM_MS)
        print("operations too short to aim a kill at (< %d ms): %s" % (
            AIM_MS, ", ".join(sorted(k for k, ms in longest.items() if ms < AIM_MS)) or "none"))
        ds = delays(ref)
        print("kill delays (s): " + " ".join("%.2f" % d for d in ds))
        total += len(ds)
        for i, d in enumerate(ds):
            kill_case(tag, i, d, ref, old)

    orphan_case(old)
    dm_leftovers()
    teardown("end")
    print("\nkills that hit a live run, by operation (the reference run's timeline from the same starting point) and by program seen running:")
    for (tag, k), n in sorted(HITS.items()):
        print("  %-9s %3d  %s" % (tag, n, k))
    for tag, kinds in sorted(KINDS.items()):
        missed = [k for k in kinds if not HITS.get((tag, k))]
        check("%s: every kind of operation of the reference run was hit by a kill (%s)" % (tag, ", ".join(kinds)),
              not missed, "never hit: " + ", ".join(missed))
    print("kills aimed: %d over 2 starting points; that hit a live run: %d" % (total, KILLED[0]))
    print("orphans left running by a kill: %d seen refusing a run that may not wait, %d ended too soon to tell" % (ORPHANS["refused"], ORPHANS["inconclusive"]))
    summary(t0)


def orphan_case(old_uuids):
    """A program the run started outlives the run: ndctl, slowed by a wrapper first in
    PATH (the module looks tools up in PATH first) that sleeps 4 s and then runs the
    real one, is running when the run is killed. While the orphan lives, a run that
    may not wait is refused naming the lock; a run that may wait converges after it."""
    print("\n=== the lock held by an orphan")
    slow = os.path.join(W, "slow-bin")
    os.makedirs(slow, exist_ok=True)
    real = subprocess.run(["sh", "-c", "command -v ndctl"], capture_output=True, text=True).stdout.strip()
    wrapper = os.path.join(slow, "ndctl")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nsleep 4\nexec %s \"$@\"\n" % real)
    os.chmod(wrapper, 0o755)
    teardown("orphan")
    env = dict(ENV, PATH=slow + ":" + os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))
    p = subprocess.Popen([BIN, write_args("orphan.kill", ARGS)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    orphan = None
    for _ in range(200):
        kids = [pid for pid, c in children(p.pid) if c == "ndctl"]
        if kids:
            orphan = kids[0]
            break
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    rc = p.wait()
    check("orphan: the run was killed while the ndctl it started ran", orphan is not None and rc == -signal.SIGKILL, "rc %s, child %s" % (rc, orphan))
    if orphan is None:
        return
    env0 = dict(ENV, PMEM_STACK_LOCK_WAIT="0")
    p0 = subprocess.run([BIN, write_args("orphan.nowait", ARGS)], capture_output=True, text=True, env=env0)
    lives = alive(orphan)
    try:
        msg0 = json.loads(p0.stdout).get("msg", "")
    except ValueError:
        msg0 = p0.stdout
    print("  the run that may not wait: rc %s: %s" % (p0.returncode, msg0))
    check("orphan: while the orphan ndctl lives, a run that may not wait is refused, naming the lock",
          lives and p0.returncode == 1 and "or a program it started that is still running, is working" in msg0, "orphan alive after: %s" % lives)
    t = time.time()
    rc, r = module("orphan.wait", ARGS)
    print("  the run that may wait: rc %s after %.1f s: %s" % (rc, time.time() - t, (r or {}).get("msg", "")))
    check("orphan: a run that may wait converges (rc 0) once the orphan is done",
          rc == 0 and not alive(orphan), (r or {}).get("msg", ""))
    rc2, r2 = module("orphan.again", ARGS)
    check("orphan: the next run is unchanged", rc2 == 0 and r2 is not None and r2.get("changed") is False)
    m = mounted_xfs()
    if m:
        old_uuids.add(m[0])


def dm_leftovers():
    """What a kill between the dm ioctls leaves, made by hand: a device created with no
    live table (DM_DEV_CREATE done, the table not yet live), and one suspended (a reload
    stopped between its suspend and its resume). The next run must converge with the
    data kept."""
    print("\n=== dm devices left half-way by the ioctls")
    for case, make in (
        ("no live table", [["dmsetup", "remove", "pmem-striped"],
                           ["dmsetup", "create", "pmem-striped", "--notable"]]),
        ("suspended", [["dmsetup", "suspend", "pmem-striped"]]),
    ):
        rc, r = module("dm.%s.converge" % case[:2], ARGS)
        with open("/mnt/pmem/data", "wb") as f:
            f.write(os.urandom(1 << 20))
        os.sync()
        before = out("sha256sum", "/mnt/pmem/data").split()[0]
        subprocess.run(["umount", "/mnt/pmem"], capture_output=True)
        for argv in make:
            subprocess.run(argv, capture_output=True)
        subprocess.run(["udevadm", "settle"], capture_output=True)
        info = out("dmsetup", "info", "pmem-striped")
        state = " ".join(l.strip() for l in info.splitlines() if l.startswith(("State", "Tables")))
        print("  %s: %s" % (case, state))
        rc, r = module("dm.%s" % case[:2], ARGS)
        acts = [s["action"] for s in (r or {}).get("plan", [])]
        check("dm %s: the run converges (rc 0) with reload_dm first, nothing destructive (%s)" % (case, ",".join(acts)),
              rc == 0 and acts[:1] == ["reload_dm"] and not any(s["destructive"] for s in r["plan"]),
              (r or {}).get("msg", ""))
        after = out("sha256sum", "/mnt/pmem/data").split()[:1]
        check("dm %s: the data is intact and mounted with dax=always" % case,
              after == [before] and (mounted_xfs() or ("", ""))[1] == "dax=always", "%s %s" % (after, mounted_xfs()))
        rc, r = module("dm.%s.again" % case[:2], ARGS)
        check("dm %s: the next run is unchanged" % case, rc == 0 and r is not None and r.get("changed") is False)


def summary(t0):
    print("\nkills.py took %.0f s" % (time.time() - t0))
    print("SUMMARY: %d passed, %d failed" % (PASS, FAIL))
    sys.exit(0 if FAIL == 0 else 1)


if __name__ == "__main__":
    main()
