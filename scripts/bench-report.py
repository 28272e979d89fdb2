"""Print the benchmark results (target/bench/{main,scale,foreign}.json, fleet.log) as the README's tables."""
import json
import os
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "target/bench"


def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None


def pct(x):
    return f"{100 * x:.1f}%" if x is not None else "-"


def own_text(c):
    """A converge's own time in ms and its share: `own 410 ms, 8.1%`."""
    ms = c.get("own_ms", c["outside_external_tools_ms"])
    return f"own {ms:.0f} ms, {pct(c.get('own_share', c['outside_external_tools_share']))}"


def converge_side_by_side(b, n):
    """A converge by the baseline and by the new binary, from the same state, in the same boot."""
    print("\n### Converge, baseline against new (same boot, same starting state)\n")
    print("| | baseline | new |")
    print("|---|---|---|")
    rows = [
        ("wall", lambda c: f"{c['wall_ms']:.0f} ms"),
        ("external programs", lambda c: f"{c['external_ms']:.0f} ms"),
        ("kernel calls made on purpose", lambda c: f"{c.get('kernel_ms', 0):.0f} ms" if c.get("kernel_calls_ms") else "(not counted)"),
        ("own (outside both)", lambda c: f"{c.get('own_ms', c['outside_external_tools_ms']):.0f} ms"),
        ("own share", lambda c: pct(c.get("own_share", c["outside_external_tools_share"]))),
        ("outside external programs (old measure)", lambda c: pct(c["outside_external_tools_share"])),
        ("probes", lambda c: f"{c['probes']}, {c['probe_ms']:.0f} ms"),
        ("probe parts", lambda c: ", ".join(f"{k} {v:.0f}" for k, v in c.get("probe_parts_ms", {}).items()) or "-"),
        ("external by command", lambda c: ", ".join(f"{k} {v:.0f}" for k, v in c["external_by_command_ms"].items())),
        ("kernel by call", lambda c: ", ".join(f"{k} {v:.0f}" for k, v in c.get("kernel_calls_ms", {}).items()) or "-"),
        ("own by operation", lambda c: ", ".join(f"{k} {v:.0f}" for k, v in c.get("own_by_operation_ms", {}).items())),
        ("own by phase", lambda c: ", ".join(f"{k} {v:.0f}" for k, v in c.get("own_by_phase_ms", {}).items()) or "-"),
    ]
    for name, f in rows:
        print(f"| {name} | {f(b)} | {f(n)} |")


m = load("main.json")
if m:
    print("\n### No-op on a converged striped-xfs stack (medians)\n")
    print("| what | runs | median | p10-p90 | peak RSS |")
    print("|---|---|---|---|---|")

    def row(name, s, rss=None):
        r = f"{rss / 1024:.1f} MiB" if rss else "-"
        print(f"| {name} | {s['n']} | {s['median_ms']:.1f} ms | {s['p10_ms']:.1f}-{s['p90_ms']:.1f} ms | {r} |")

    row("`pmem_stack` no-op", m["pmem_stack_noop"], m["pmem_stack_noop"]["peak_rss_kib"])
    row("`pmem_stack` check mode", m["pmem_stack_check"], m["pmem_stack_check"]["peak_rss_kib"])
    if "pmem_stack_noop_fresh_copy" in m:
        row("`pmem_stack` no-op, a fresh copy of the binary each run", m["pmem_stack_noop_fresh_copy"],
            m["pmem_stack_noop_fresh_copy"]["peak_rss_kib"])
    if "pmem_stack_noop_pie" in m:
        row("`pmem_stack` no-op, built as a dynamically linked PIE", m["pmem_stack_noop_pie"],
            m["pmem_stack_noop_pie"]["peak_rss_kib"])
    if "baseline_noop" in m:
        row("baseline `pmem_stack` no-op (BENCH_BASELINE)", m["baseline_noop"], m["baseline_noop"]["peak_rss_kib"])
    row("replay of just the reads a no-op makes", m["read_replay"])
    for k in [k for k in m if k.startswith("floor: ")]:
        row(f"{k} (process start and exit)", m[k])
    for name, s in m["python_modules"].items():
        row(f"{name} (Python module, run directly)", s, s["peak_rss_kib"])  # an upper bound: see bench.py
    print(f"| the three Python modules together | | {m['python_chain_median_ms']:.1f} ms | | |")
    for name, s in m["playbook"].items():
        row(f"ansible-playbook, {name.replace('_', ' ')}", s)
    print("\nRatios:")
    for k, v in m["ratios"].items():
        print(f"- {k}: {v}")
    print(f"\nReplayed operations: {m['replay_ops']}")
    if m.get("noop_profile"):
        prof = ", ".join(f"{k} {v:.2f}" for k, v in m["noop_profile"].items())
        print(f"Where a no-op's time goes (ms, medians of the result's timing): {prof}")
    print(f"Processes started by a no-op / check run: {m['spawns']}")
    c = m["converge"]
    if "baseline_converge" in m:
        converge_side_by_side(m["baseline_converge"], c)
    print(f"\nConverge from fresh DIMMs: {c['steps_done']} steps in {c['wall_ms'] / 1000:.2f} s; "
          f"external tools {c['external_ms'] / 1000:.2f} s; pmem_stack itself "
          f"{c['outside_external_tools_ms'] / 1000:.2f} s ({100 * c['outside_external_tools_share']:.1f}%)"
          + (f", of which {c['probes']} probes {c['probe_ms'] / 1000:.2f} s" if c.get("probes") else "")
          + (f"; of pmem_stack's time, kernel calls made on purpose {c['kernel_ms'] / 1000:.2f} s, its own "
             f"{c['own_ms'] / 1000:.2f} s ({100 * c['own_share']:.1f}%)" if c.get("kernel_calls_ms") else ""))
    print(f"External tools: {c['external_by_command_ms']}")
    if c.get("own_by_operation_ms"):
        own = c["own_by_operation_ms"]
        print(f"Outside external tools, by operation: {own} (sum {sum(own.values()):.0f} ms); "
              f"probes {c['probe_ms']:.0f} ms; the rest {c.get('own_ms', c['outside_external_tools_ms']) - sum(own.values()) - c['probe_ms']:.0f} ms")

def foreign_rows(fd):
    print(f"\n### No-op with {fd['devices']} unrelated block devices present (loop devices with content)\n")
    print("| unrelated devices | block devices listed | runs | median | p10-p90 |")
    print("|---|---|---|---|---|")
    for k, label in (("without", "none"), ("with", str(fd["devices"]))):
        st = fd[k]
        print(f"| {label} | {fd['block_devices_listed'][k]} | {st['n']} | {st['median_ms']:.1f} ms | "
              f"{st['p10_ms']:.1f}-{st['p90_ms']:.1f} ms |")
    print(f"\nRatio of the medians, with / without: {fd['ratio_with_over_without']}")


fd = (m or {}).get("foreign_devices") or (load("foreign.json") or {}).get("foreign_devices")
if fd:
    foreign_rows(fd)

s = load("scale.json")
if s:
    print("\n### Scale: no-op cost by the number of objects\n")
    print("| stacks | namespaces | block devices | dm devices | filesystems | mounts | objects | no-op median | peak RSS | converge (pmem_stack's own share) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in s["rows"]:
        o = r["objects"]
        c = r["converge"]
        # own: outside external programs and the kernel calls it asked for (older results
        # have no kernel time: outside external programs)
        print(f"| {r['stacks']} | {o['namespaces']} | {o['block_devices']} | {o['dm_devices']} | {o['filesystems']} | "
              f"{o['mounts']} | {sum(o.values())} | {r['noop']['median_ms']:.1f} ms | {r['noop_peak_rss_kib'] / 1024:.1f} MiB | "
              f"{c['wall_ms'] / 1000:.1f} s ({own_text(c)}) |")
    if "baseline_noop_ms_fit" in s:
        print("\n#### Baseline against new, same boot (converge from the same state; no-op runs alternating)\n")
        print("| stacks | objects | no-op baseline | no-op new | per object, baseline | per object, new | converge baseline (own share) | converge new (own share) |")
        print("|---|---|---|---|---|---|---|---|")
        for r in s["rows"]:
            n_obj = sum(r["objects"].values())
            b, c = r["baseline_converge"], r["converge"]
            print(f"| {r['stacks']} | {n_obj} | {r['baseline_noop']['median_ms']:.1f} ms | {r['noop']['median_ms']:.1f} ms | "
                  f"{r['baseline_noop']['median_ms'] / n_obj:.2f} ms | {r['noop']['median_ms'] / n_obj:.2f} ms | "
                  f"{b['wall_ms'] / 1000:.2f} s ({own_text(b)}; {b['probes']} probes {b['probe_ms']:.0f} ms) | "
                  f"{c['wall_ms'] / 1000:.2f} s ({own_text(c)}; {c['probes']} probes {c['probe_ms']:.0f} ms) |")
        bf = s["baseline_noop_ms_fit"]
        print(f"\nLinear fit of the no-op, baseline: {bf['intercept_ms']} ms + {bf['ms_per_object']} ms/object (R² {bf['r2']}); "
              f"new: {s['noop_ms_fit']['intercept_ms']} ms + {s['noop_ms_fit']['ms_per_object']} ms/object (R² {s['noop_ms_fit']['r2']})")
    f, g = s["noop_ms_fit"], s["rss_kib_fit"]
    print(f"\nLinear fit, no-op time: {f['intercept_ms']} ms + {f['ms_per_object']} ms/object (R² {f['r2']}); "
          f"peak RSS: {g['intercept_kib'] / 1024:.2f} MiB + {g['kib_per_object']} KiB/object (R² {g['r2']})")

fleet = os.path.join(out, "fleet.log")
if os.path.exists(fleet):
    # tests/vm/fleet.sh prints profile_tasks' times after "FLEET TIMING": "  Ping 1 5.11s"
    lines = open(fleet).read().split("FLEET TIMING", 1)
    times = {"Ping": [], "Converged stack": []}
    for line in (lines[1].splitlines()[1:] if len(lines) > 1 else []):
        if not line.startswith("  "):
            break
        name, _, secs = line.strip().rpartition(" ")
        times[name.rsplit(" ", 1)[0]].append(float(secs.rstrip("s")))
    if all(times.values()):
        print("\n### Through Ansible on two hosts over SSH (profile_tasks, per task)\n")
        print("| task | runs | each | median |")
        print("|---|---|---|---|")
        med = {}
        for name, label in (("Converged stack", "`pmemstack.pmem.pmem_stack`, converged (no-op)"),
                            ("Ping", "`ansible.builtin.ping`")):
            t = sorted(times[name])
            med[name] = t[len(t) // 2]
            print(f"| {label} | {len(t)} | {', '.join(f'{x:.2f} s' for x in times[name])} | {med[name]:.2f} s |")
        print(f"\npmem_stack / ping: {med['Converged stack'] / med['Ping']:.2f}")
