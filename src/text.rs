//! `--format text`: the result for people at a terminal and in CI logs. The same facts
//! as the JSON result, laid out: what happened, each step with its target, detail and
//! how it went (destructive ones marked), the refusals with the option that would allow
//! them, the input errors, the failed step's command and output, the diffs, the
//! warnings, the timing line, the DAX audit drawn as a tree of layers as `lsblk`
//! draws devices, and (`--facts`) LVM's PVs, VGs and LVs with their 2 MiB alignment.
//! Nothing here decides anything: it only reads a [`ModuleResult`] (and, in a live run,
//! the [`Progress`] of each step as it starts and ends).

use crate::audit::LayerAudit;
use crate::plan::PlanItem;
use crate::report::{DiffItem, ModuleResult, Timing};
use crate::{Progress, StepOutcome};
use std::fmt::Write as _;
use std::io;
use std::time::Instant;

/// The mark of a step that destroys data.
pub const DESTRUCTIVE: &str = "DESTRUCTIVE";

/// `n` and `noun`, plural unless `n` is 1: "1 step", "2 steps".
fn counted(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// The whole result as text (ends with a newline).
pub fn render(r: &ModuleResult) -> String {
    let mut out = String::new();
    let _ = write_result(&mut out, r);
    out
}

fn write_result(out: &mut String, r: &ModuleResult) -> std::fmt::Result {
    // a refusal's or an input error's text is `msg`, and is listed below: said once
    let refusal_texts: Vec<String> = r.refusals.iter().map(|x| x.to_string()).collect();
    if !r.refusals.is_empty() && r.msg == refusal_texts.join("; ") {
        let refusals = counted(r.refusals.len(), "refusal");
        writeln!(out, "{}: {refusals}, nothing was done", status(r))?;
    } else if !r.errors.is_empty() {
        let problems = counted(r.errors.len(), "problem");
        writeln!(out, "{}: {problems} in the arguments", status(r))?;
    } else {
        writeln!(out, "{}: {}", status(r), r.msg)?;
    }
    if !r.plan.is_empty() {
        plan(out, r)?;
    }
    if let Some(f) = &r.failed_step {
        writeln!(out)?;
        writeln!(
            out,
            "Failed step {}/{}: {} {}",
            f.index + 1,
            r.plan.len().max(f.index + 1),
            f.step.action,
            f.step.target
        )?;
        if let Some(argv) = &f.argv {
            writeln!(out, "  command: {}", argv.join(" "))?;
        }
        if let Some(rc) = f.rc {
            writeln!(out, "  exit status: {rc}")?;
        }
        for (name, text) in [("stdout", &f.stdout), ("stderr", &f.stderr)] {
            let mut lines = text.lines();
            if let Some(first) = lines.next() {
                writeln!(out, "  {name}: {first}")?;
                for l in lines {
                    writeln!(out, "  {:width$}  {l}", "", width = name.len())?;
                }
            }
        }
    }
    if !r.refusals.is_empty() {
        writeln!(out)?;
        writeln!(out, "Refused (nothing was done):")?;
        for why in &r.refusals {
            writeln!(out, "  - {why}")?;
            if let Some(option) = why.allowed_by {
                writeln!(out, "    allowed by: {option}")?;
            }
        }
    }
    if !r.errors.is_empty() {
        writeln!(out)?;
        writeln!(out, "Errors in the arguments:")?;
        for e in &r.errors {
            if e.path.is_empty() {
                writeln!(out, "  - {}", e.msg)?;
            } else {
                writeln!(out, "  - {}: {}", e.path, e.msg)?;
            }
        }
    }
    if let Some(d) = &r.diff {
        if !d.is_empty() {
            writeln!(out)?;
            writeln!(out, "Diff:")?;
            for item in d {
                diff_item(out, item)?;
            }
        }
    }
    let in_tree = audit_warnings_in_tree(r);
    let warnings: Vec<&String> = r.warnings.iter().filter(|w| !in_tree.contains(w)).collect();
    if !warnings.is_empty() {
        writeln!(out)?;
        writeln!(out, "Warnings:")?;
        for w in warnings {
            writeln!(out, "  - {w}")?;
        }
    }
    if let Some(faults) = &r.pmd_faults {
        writeln!(out)?;
        writeln!(out, "PMD faults (verify_pmd):")?;
        for (path, c) in faults {
            writeln!(
                out,
                "  {path}: {} 2 MiB, {} fell back to 4 KiB, {} other, {} bytes",
                c.nopage, c.fallback, c.other, c.bytes
            )?;
        }
    }
    if let Some(a) = &r.dax_audit {
        if !a.platform.is_empty() || !a.mounts.is_empty() || !a.errors.is_empty() {
            writeln!(out)?;
            audit(out, a)?;
        }
    }
    if let Some(l) = &r.lvm_summary {
        if !(l.pvs.is_empty() && l.vgs.is_empty() && l.lvs.is_empty()) {
            writeln!(out)?;
            lvm(out, l)?;
        }
    }
    if let Some(t) = &r.timing {
        writeln!(out)?;
        writeln!(out, "{}", timing(t))?;
    }
    Ok(())
}

/// LVM at a glance: a row per PV, VG and LV, marked as the audit's layers are (an LV is
/// `FIX` when anything keeps 2 MiB faults off it, each said under it).
fn lvm(out: &mut String, s: &crate::audit::lvm::LvmSummary) -> std::fmt::Result {
    // (name, kind, ok, found, lines under it)
    type LvmRow = (String, &'static str, Option<bool>, String, Vec<String>);
    let mut rows: Vec<LvmRow> = Vec::new();
    let size = |b: u64| crate::units::Bytes(b).to_string();
    for p in &s.pvs {
        let mut found = format!(
            "{}, pe_start {}",
            p.vg.as_deref()
                .map_or_else(|| "in no VG".to_string(), |v| format!("VG {v}")),
            p.pe_start.map_or_else(|| "unknown".to_string(), size)
        );
        if let Some(e) = &p.error {
            found.push_str(&format!(", unreadable: {e}"));
        }
        rows.push((p.device.clone(), "pv", p.aligned, found, Vec::new()));
    }
    for v in &s.vgs {
        let mut found = format!(
            "extent size {}, PVs {}",
            size(v.extent_size),
            v.pvs.join(" ")
        );
        if v.extent_size_aligned && !v.aligned {
            found.push_str(": a PV's pe_start is off 2 MiB");
        }
        rows.push((v.name.clone(), "vg", Some(v.aligned), found, Vec::new()));
    }
    for l in &s.lvs {
        let mut found = format!("{}, {}", l.layout, size(l.size));
        if let Some(ss) = l.stripe_size {
            found.push_str(&format!(", {} stripes of {}", l.stripes, size(ss)));
        }
        found.push_str(&format!(", {}", counted(l.segments, "segment")));
        match &l.path {
            Some(p) => {
                found.push_str(&format!(", active: {p}"));
                if let Some(k) = l.max_sectors_kb {
                    found.push_str(&format!(", max_sectors_kb {k}"));
                }
            }
            None => found.push_str(", not active"),
        }
        let ok = l.aligned && l.problems.is_empty();
        rows.push((l.name.clone(), "lv", Some(ok), found, l.problems.clone()));
    }
    writeln!(out, "LVM (2 MiB alignment):")?;
    let w_name = rows
        .iter()
        .map(|r| r.0.chars().count())
        .chain(["NAME".len()])
        .max()
        .unwrap_or(0);
    let pad = |t: &str, w: usize| format!("{t}{}", " ".repeat(w.saturating_sub(t.chars().count())));
    writeln!(out, "  {}  KIND  2M   FOUND", pad("NAME", w_name))?;
    for (name, kind, ok, found, under) in rows {
        let m = match ok {
            Some(ok) => mark(ok),
            None => "?  ",
        };
        writeln!(out, "  {}  {kind:4}  {m}  {found}", pad(&name, w_name))?;
        for u in under {
            writeln!(out, "  {}{}{u}", pad("", w_name), " ".repeat(13))?;
        }
    }
    Ok(())
}

/// The first word: how the run went.
fn status(r: &ModuleResult) -> &'static str {
    match (r.failed, r.changed, r.check_mode) {
        (true, _, _) => "FAILED",
        (false, true, true) => "CHANGES PENDING (check mode: nothing was run)",
        (false, true, false) => "CHANGED",
        (false, false, true) => "OK, nothing to do (check mode)",
        (false, false, false) => "OK, no changes",
    }
}

/// How each step of the plan went, in plan order: the steps done and skipped are in
/// `done` and `skipped_steps` in that order; the failed one is `failed_step`.
fn step_states(r: &ModuleResult) -> Vec<String> {
    let mut done = r.done.iter().peekable();
    let mut skipped = r.skipped_steps.iter().peekable();
    r.plan
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if r.check_mode {
                return "would run".to_string();
            }
            if done.peek() == Some(&s) {
                done.next();
                return "done".to_string();
            }
            if skipped.peek().is_some_and(|k| &k.step == s) {
                let why = skipped.next().map(|k| k.why.as_str()).unwrap_or("");
                return format!("skipped: {why}");
            }
            match &r.failed_step {
                Some(f) if f.index == i && &f.step == s => "FAILED".to_string(),
                _ => "not run".to_string(),
            }
        })
        .collect()
}

fn plan(out: &mut String, r: &ModuleResult) -> std::fmt::Result {
    let n = r.plan.len();
    let destructive = r.plan.iter().filter(|s| s.destructive).count();
    writeln!(out)?;
    write!(out, "Plan: {}", counted(n, "step"))?;
    if destructive > 0 {
        write!(out, ", {destructive} destroying data ({DESTRUCTIVE})")?;
    }
    writeln!(out)?;
    let states = step_states(r);
    let number = |i: usize| format!("{}/{n}", i + 1);
    let w_num = number(n.saturating_sub(1)).len();
    let w_action = r.plan.iter().map(|s| s.action.len()).max().unwrap_or(0);
    let w_target = r
        .plan
        .iter()
        .map(|s| s.target.chars().count())
        .max()
        .unwrap_or(0);
    for (i, (s, state)) in r.plan.iter().zip(&states).enumerate() {
        let mut line = format!(
            "  {:>w_num$}  {:w_action$}  {}{}  {state}",
            number(i),
            s.action,
            s.target,
            " ".repeat(w_target - s.target.chars().count()),
        );
        if s.destructive {
            line.push_str("  ");
            line.push_str(DESTRUCTIVE);
        }
        writeln!(out, "{}", line.trim_end())?;
        writeln!(out, "  {:w_num$}    {}", "", s.detail)?;
    }
    Ok(())
}

fn diff_item(out: &mut String, d: &DiffItem) -> std::fmt::Result {
    writeln!(out, "  --- {}", d.before_header)?;
    writeln!(out, "  +++ {}", d.after_header)?;
    for (mark, line) in line_diff(&d.before, &d.after) {
        writeln!(out, "  {mark}{line}")?;
    }
    Ok(())
}

/// A line diff of two short texts (each object's text is a few lines): every line,
/// marked ' ' (in both), '-' (before only) or '+' (after only), in order; the longest
/// common subsequence is kept.
pub fn line_diff<'a>(before: &'a str, after: &'a str) -> Vec<(char, &'a str)> {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..]
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len() + b.len());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(('-', a[i]));
            i += 1;
        } else {
            out.push(('+', b[j]));
            j += 1;
        }
    }
    out
}

/// The audit's warnings that its tree shows as a layer's fix (they are not repeated
/// under "Warnings").
fn audit_warnings_in_tree(r: &ModuleResult) -> Vec<&String> {
    let Some(a) = &r.dax_audit else {
        return Vec::new();
    };
    let prefixes: Vec<String> = a
        .mounts
        .iter()
        .flat_map(|m| {
            m.layers
                .iter()
                .filter(|l| !l.pmd_ok)
                .map(move |l| format!("dax_audit {}: {} {}: ", m.mount, l.layer, l.object))
        })
        .collect();
    a.warnings
        .iter()
        .filter(|w| prefixes.iter().any(|p| w.starts_with(p.as_str())))
        .collect()
}

/// One row of the tree: its prefix (the branches drawn), name, layer, mark, and lines.
struct Row {
    prefix: String,
    name: String,
    layer: String,
    ok: bool,
    found: Vec<String>,
    fix: Vec<String>,
    /// The prefix of the lines under this row (found lines after the first, fixes).
    more: String,
}

/// Rows for `nodes` (in the audit's order, each with its depth) drawn as a tree: a node
/// belongs to the nearest node before it with a smaller depth. Consecutive findings of
/// one object at one depth (the segments of one dm table) are one row.
fn tree_rows(nodes: &[&LayerAudit], indent: &str) -> Vec<Row> {
    // merge the lines of one object
    let mut merged: Vec<(usize, Vec<&LayerAudit>)> = Vec::new();
    for l in nodes {
        match merged.last_mut() {
            Some((d, ls))
                if *d == l.depth && ls[0].object == l.object && ls[0].layer == l.layer =>
            {
                ls.push(l)
            }
            _ => merged.push((l.depth, vec![l])),
        }
    }
    // each node's level in the drawing: one more than its parent's
    let mut levels: Vec<usize> = Vec::with_capacity(merged.len());
    for (i, (d, _)) in merged.iter().enumerate() {
        let parent = (0..i).rev().find(|&k| merged[k].0 < *d);
        levels.push(parent.map_or(0, |p| levels[p] + 1));
    }
    // whether a later node at `level` comes before the branch ends (a sibling follows)
    let sibling_follows = |i: usize, level: usize| {
        merged[i + 1..]
            .iter()
            .zip(&levels[i + 1..])
            .map(|(_, l)| *l)
            .take_while(|l| *l >= level)
            .any(|l| l == level)
    };
    let mut rows = Vec::with_capacity(merged.len());
    for (i, (_, ls)) in merged.iter().enumerate() {
        let level = levels[i];
        let mut prefix = indent.to_string();
        // the branches of the ancestors: a line down where they have more children
        for up in 1..level {
            prefix.push_str(if sibling_follows(i, up) { "│ " } else { "  " });
        }
        let mut more = prefix.clone();
        if level > 0 {
            let last = !sibling_follows(i, level);
            prefix.push_str(if last { "└─" } else { "├─" });
            more.push_str(if last { "  " } else { "│ " });
        }
        let has_children = levels.get(i + 1).is_some_and(|l| *l > level);
        more.push_str(if has_children { "│ " } else { "  " });
        rows.push(Row {
            prefix,
            name: ls[0].object.clone(),
            layer: ls[0].layer.clone(),
            ok: ls.iter().all(|l| l.pmd_ok),
            found: ls.iter().map(|l| l.found.clone()).collect(),
            fix: ls.iter().filter_map(|l| l.fix.clone()).collect(),
            more,
        });
    }
    rows
}

fn audit(out: &mut String, a: &crate::audit::DaxAudit) -> std::fmt::Result {
    writeln!(out, "DAX audit (2 MiB page faults, layer by layer):")?;
    let platform: Vec<&LayerAudit> = a.platform.iter().collect();
    let mut rows: Vec<Row> = Vec::new();
    if !platform.is_empty() {
        // the platform's findings, under one root
        rows.push(Row {
            prefix: "  ".into(),
            name: "platform".into(),
            layer: String::new(),
            ok: platform.iter().all(|l| l.pmd_ok),
            found: Vec::new(),
            fix: Vec::new(),
            more: "  │ ".into(),
        });
        for (i, l) in platform.iter().enumerate() {
            let last = i + 1 == platform.len();
            rows.push(Row {
                prefix: format!("  {}", if last { "└─" } else { "├─" }),
                name: l.object.clone(),
                layer: l.layer.clone(),
                ok: l.pmd_ok,
                found: vec![l.found.clone()],
                fix: l.fix.iter().cloned().collect(),
                more: format!("  {}  ", if last { " " } else { "│" }),
            });
        }
    }
    for m in &a.mounts {
        let layers: Vec<&LayerAudit> = m.layers.iter().collect();
        rows.extend(tree_rows(&layers, "  "));
    }
    let w_name = rows
        .iter()
        .map(|r| r.prefix.chars().count() + r.name.chars().count())
        .chain([2 + "NAME".len()])
        .max()
        .unwrap_or(0);
    let w_layer = rows
        .iter()
        .map(|r| r.layer.len())
        .chain(["LAYER".len()])
        .max()
        .unwrap_or(0);
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    writeln!(
        out,
        "{}  {}  2M   FOUND",
        pad("  NAME", w_name),
        pad("LAYER", w_layer)
    )?;
    for r in &rows {
        let mut found = r.found.iter();
        let line = format!(
            "{}  {}  {}  {}",
            pad(&format!("{}{}", r.prefix, r.name), w_name),
            pad(&r.layer, w_layer),
            mark(r.ok),
            found.next().map(String::as_str).unwrap_or("")
        );
        writeln!(out, "{}", line.trim_end())?;
        let cont = |s: &str| format!("{}  {}       {s}", pad(&r.more, w_name), pad("", w_layer));
        for f in found {
            writeln!(out, "{}", cont(f).trim_end())?;
        }
        for f in &r.fix {
            writeln!(out, "{}", cont(&format!("fix: {f}")).trim_end())?;
        }
    }
    for e in &a.errors {
        writeln!(out, "  no DAX: {e}")?;
    }
    // the audit's other warnings (NUMA nodes crossed) are in the result's warnings
    Ok(())
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "ok "
    } else {
        "FIX"
    }
}

/// The timing line of a live run.
pub fn timing(t: &Timing) -> String {
    let mut line = format!(
        "Timing: {:.1} ms wall, {:.1} ms in {}, {} ({:.1} ms), {}",
        t.wall_ms,
        t.external_ms,
        counted(t.external.len(), "external program"),
        counted(t.probes as usize, "probe"),
        t.probe_ms,
        counted(t.operations.len(), "operation"),
    );
    if let Some(kib) = t.peak_rss_kib {
        let _ = write!(line, ", peak RSS {kib} KiB");
    }
    line
}

/// Prints a live run's steps as they start and end, one line each, to `out` (stdout in
/// `--format text`): `[2/6] mkfs dm device s ...` then `[2/6] mkfs dm device s: done
/// (1.8 s)`. Lines are written whole, so a long step shows where the run is.
pub struct LiveSteps<W: io::Write> {
    out: W,
    started: Option<Instant>,
    lines: usize,
}

impl<W: io::Write> LiveSteps<W> {
    /// A printer writing to `out`.
    pub fn new(out: W) -> Self {
        LiveSteps {
            out,
            started: None,
            lines: 0,
        }
    }

    /// Lines printed so far.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Print one progress event. A write that fails (the reader went away) is ignored:
    /// the run goes on, and its result is what counts.
    pub fn on(&mut self, p: Progress<'_>) {
        let _ = self.write(p);
    }

    fn write(&mut self, p: Progress<'_>) -> io::Result<()> {
        self.lines += 1;
        match p {
            Progress::Started { index, total, step } => {
                self.started = Some(Instant::now());
                writeln!(self.out, "{} ...", head(index, total, step))?;
            }
            Progress::Ended {
                index,
                total,
                step,
                outcome,
            } => {
                let took = self
                    .started
                    .take()
                    .map(|t| format!(" ({:.2} s)", t.elapsed().as_secs_f64()))
                    .unwrap_or_default();
                let head = head(index, total, step);
                match outcome {
                    StepOutcome::Done => writeln!(self.out, "{head}: done{took}")?,
                    StepOutcome::Skipped(why) => {
                        writeln!(self.out, "{head}: skipped{took}: {why}")?
                    }
                    StepOutcome::Failed(e) => writeln!(self.out, "{head}: FAILED{took}: {e}")?,
                }
            }
        }
        self.out.flush()
    }
}

fn head(index: usize, total: usize, step: &PlanItem) -> String {
    format!(
        "[{}/{total}] {} {}{}",
        index + 1,
        step.action,
        step.target,
        if step.destructive {
            format!(" ({DESTRUCTIVE})")
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{DaxAudit, StackAudit};
    use crate::report::{FailedStep, SkippedItem};

    fn step(action: &str, target: &str, detail: &str, destructive: bool) -> PlanItem {
        PlanItem {
            action: action.into(),
            target: target.into(),
            detail: detail.into(),
            destructive,
        }
    }

    fn layer(
        depth: usize,
        layer: &str,
        object: &str,
        found: &str,
        fix: Option<&str>,
    ) -> LayerAudit {
        LayerAudit {
            layer: layer.into(),
            object: object.into(),
            found: found.into(),
            pmd_ok: fix.is_none(),
            fix: fix.map(String::from),
            depth,
        }
    }

    /// A layer that allows PMD faults.
    fn ok(depth: usize, layer_name: &str, object: &str, found: &str) -> LayerAudit {
        layer(depth, layer_name, object, found, None)
    }

    /// Layers that allow PMD faults, one a row: `depth | layer | object | found`.
    fn oks(rows: &[&str]) -> Vec<LayerAudit> {
        rows.iter()
            .map(|row| match row.split(" | ").collect::<Vec<_>>()[..] {
                [depth, layer_name, object, found] => {
                    ok(depth.parse().expect("depth"), layer_name, object, found)
                }
                _ => panic!("not a layer: {row}"),
            })
            .collect()
    }

    /// A live run that failed at its third step: one done, one skipped, the failed one
    /// with its command, one not run; a diff; a refusal is not part of it.
    #[test]
    fn a_failed_live_run() {
        let plan = vec![
            step(
                "create_namespace",
                "namespace pm0",
                "ndctl create-namespace ...",
                false,
            ),
            step(
                "reload_dm",
                "/dev/mapper/s",
                "suspend, load, resume s",
                true,
            ),
            step("mkfs", "dm device s", "mkfs.xfs -q -f <dm device s>", false),
            step("mount", "/mnt/x", "mount -t xfs -o dax=always", false),
        ];
        let mut r = ModuleResult::new(Default::default());
        r.plan = plan.clone();
        r.done = vec![plan[0].clone()];
        r.skipped_steps = vec![SkippedItem {
            step: plan[1].clone(),
            why: "the table is already loaded".into(),
        }];
        r.changed = true;
        r.failed_step = Some(FailedStep {
            index: 2,
            step: plan[2].clone(),
            argv: Some(vec!["mkfs.xfs".into(), "-q".into(), "/dev/dm-0".into()]),
            rc: Some(1),
            stdout: String::new(),
            stderr: "mkfs.xfs: cannot open /dev/dm-0\nDevice or resource busy".into(),
        });
        r.diff = Some(vec![DiffItem {
            before_header: "namespace pm0 (before)".into(),
            after_header: "namespace pm0 (after)".into(),
            before: "region: region0\nsize: 1073741824\n".into(),
            after: "region: region0\nsize: 536870912\nalign: 2M\n".into(),
        }]);
        r.timing = Some(Timing {
            wall_ms: 1234.5,
            external_ms: 1000.0,
            probes: 3,
            probe_ms: 12.25,
            peak_rss_kib: Some(4096),
            ..Timing::default()
        });
        let r = r.fail("step 3 of 4 failed (mkfs dm device s): ...");
        let text = render(&r);
        let want = "\
FAILED: step 3 of 4 failed (mkfs dm device s): ...

Plan: 4 steps, 1 destroying data (DESTRUCTIVE)
  1/4  create_namespace  namespace pm0  done
         ndctl create-namespace ...
  2/4  reload_dm         /dev/mapper/s  skipped: the table is already loaded  DESTRUCTIVE
         suspend, load, resume s
  3/4  mkfs              dm device s    FAILED
         mkfs.xfs -q -f <dm device s>
  4/4  mount             /mnt/x         not run
         mount -t xfs -o dax=always

Failed step 3/4: mkfs dm device s
  command: mkfs.xfs -q /dev/dm-0
  exit status: 1
  stderr: mkfs.xfs: cannot open /dev/dm-0
          Device or resource busy

Diff:
  --- namespace pm0 (before)
  +++ namespace pm0 (after)
   region: region0
  -size: 1073741824
  +size: 536870912
  +align: 2M

Timing: 1234.5 ms wall, 1000.0 ms in 0 external programs, 3 probes (12.2 ms), 0 operations, peak RSS 4096 KiB
";
        assert_eq!(text, want, "\n{text}");
    }

    /// A refusal names the option that allows it; input errors name their paths.
    #[test]
    fn refusals_and_errors() {
        let mut r = ModuleResult::new(Default::default());
        r.refusals = vec![
            crate::plan::Refused::losing_data("reloading dm device s", "it moves data"),
            crate::plan::Refused::because("/dev/pmem1 is held by md0, which is not declared"),
        ];
        let r = r.fail("refusing ...");
        let text = render(&r);
        assert!(text.starts_with("FAILED: refusing ...\n"), "{text}");
        let msg: Vec<String> = r.refusals.iter().map(|x| x.to_string()).collect();
        let msg = msg.join("; ");
        let text = render(&r.fail(msg));
        assert!(
            text.starts_with("FAILED: 2 refusals, nothing was done\n\nRefused"),
            "{text}"
        );
        assert!(
            text.contains(
                "Refused (nothing was done):\n  - refusing reloading dm device s: it moves data. Set allow_data_loss: true to allow it\n    allowed by: allow_data_loss: true\n  - /dev/pmem1 is held by md0, which is not declared\n"
            ),
            "{text}"
        );
        let mut r = ModuleResult::new(Default::default());
        r.errors = vec![crate::report::ErrorItem {
            path: "devices[0].chunk".into(),
            msg: "not a size".into(),
        }];
        let text = render(&r.fail("devices[0].chunk: not a size"));
        assert!(
            text.starts_with("FAILED: 1 problem in the arguments\n")
                && text.contains("Errors in the arguments:\n  - devices[0].chunk: not a size\n"),
            "{text}"
        );
    }

    /// The audit as a tree: the platform, then each mount down to its namespaces; a layer
    /// that needs a fix says it under itself, the tree's lines carrying on past it; its
    /// warning is not repeated under "Warnings", the others are.
    #[test]
    fn the_audit_tree() {
        let mut r = ModuleResult::new(Default::default());
        r.msg = "No changes.".into();
        r.check_mode = true;
        let fix = "echo 2048 > /sys/block/dm-0/queue/max_sectors_kb";
        let dm_warning = format!(
            "dax_audit /mnt/x: dm /dev/mapper/s: striped 2 x chunk 4096 sectors (2M), max_sectors_kb 1280; fix: {fix}"
        );
        r.warnings = vec![
            "could not read /dev/mapper/foreign-err".into(),
            dm_warning.clone(),
        ];
        r.dax_audit = Some(DaxAudit {
            platform: oks(&[
                "0 | platform | page size | 4K",
                "0 | platform | cpu pse | 2 MiB pages supported",
            ]),
            mounts: vec![
                StackAudit {
                    mount: "/mnt/x".into(),
                    pmd_ok: false,
                    layers: vec![
                        ok(0, "mount", "/mnt/x", "dax=always"),
                        ok(1, "filesystem", "/dev/mapper/s", "xfs block size 4K"),
                        layer(
                            2,
                            "dm",
                            "/dev/mapper/s",
                            "striped 2 x chunk 4096 sectors (2M), max_sectors_kb 1280",
                            Some(fix),
                        ),
                        ok(3, "namespace", "pm0", "fsdax namespace pm0 (/dev/pmem0)"),
                        ok(3, "namespace", "pm1", "fsdax namespace pm1 (/dev/pmem1)"),
                    ],
                    numa_nodes: vec![0],
                },
                StackAudit {
                    mount: "/mnt/e".into(),
                    pmd_ok: true,
                    layers: oks(&[
                        "0 | mount | /mnt/e | dax=always",
                        "1 | filesystem | /dev/pmem1.1p1 | ext4 block size 4K",
                        "2 | partition | /dev/pmem1.1p1 | starts at sector 4096",
                        "3 | namespace | pm2 | fsdax namespace pm2 (/dev/pmem1.1)",
                    ]),
                    numa_nodes: vec![0],
                },
            ],
            warnings: vec![dm_warning],
            errors: vec![],
        });
        let text = render(&r);
        let want = "\
OK, nothing to do (check mode): No changes.

Warnings:
  - could not read /dev/mapper/foreign-err

DAX audit (2 MiB page faults, layer by layer):
  NAME                LAYER       2M   FOUND
  platform                        ok
  ├─page size         platform    ok   4K
  └─cpu pse           platform    ok   2 MiB pages supported
  /mnt/x              mount       ok   dax=always
  └─/dev/mapper/s     filesystem  ok   xfs block size 4K
    └─/dev/mapper/s   dm          FIX  striped 2 x chunk 4096 sectors (2M), max_sectors_kb 1280
      │                                fix: echo 2048 > /sys/block/dm-0/queue/max_sectors_kb
      ├─pm0           namespace   ok   fsdax namespace pm0 (/dev/pmem0)
      └─pm1           namespace   ok   fsdax namespace pm1 (/dev/pmem1)
  /mnt/e              mount       ok   dax=always
  └─/dev/pmem1.1p1    filesystem  ok   ext4 block size 4K
    └─/dev/pmem1.1p1  partition   ok   starts at sector 4096
      └─pm2           namespace   ok   fsdax namespace pm2 (/dev/pmem1.1)
";
        assert_eq!(text, want, "\n{text}");
    }

    /// LVM at a glance: each PV, VG and LV with its mark, what keeps 2 MiB faults off an
    /// LV under it; nothing without LVM.
    #[test]
    fn the_lvm_summary() {
        use crate::audit::lvm::{LvSummary, LvmSummary, PvSummary, VgSummary};
        let pv = |device: &str, vg: &str, pe_start: u64| PvSummary {
            device: device.into(),
            uuid: None,
            vg: Some(vg.into()),
            pe_start: Some(pe_start),
            aligned: Some(pe_start.is_multiple_of(2 << 20)),
            error: None,
        };
        let lv = |name: &str, problems: &[&str]| LvSummary {
            name: name.into(),
            size: 100 << 20,
            layout: "linear".into(),
            stripes: 1,
            stripe_size: None,
            segments: 1,
            aligned: problems.is_empty(),
            active: false,
            dm: None,
            path: None,
            max_sectors_kb: None,
            problems: problems.iter().map(|p| p.to_string()).collect(),
        };
        let mut striped = lv("vgp/lvs", &[]);
        striped.layout = "striped".into();
        striped.size = 64 << 20;
        (striped.stripes, striped.stripe_size) = (2, Some(2 << 20));
        (striped.active, striped.path, striped.max_sectors_kb) =
            (true, Some("/dev/mapper/vgp-lvs".into()), Some(2048));
        let mut r = ModuleResult::new(Default::default());
        r.msg = "facts".into();
        r.lvm_summary = Some(LvmSummary {
            pvs: vec![
                pv("/dev/pmem0", "vgp", 2 << 20),
                pv("/dev/pmem2", "vgd", 1 << 20),
            ],
            vgs: vec![VgSummary {
                name: "vgd".into(),
                extent_size: 4 << 20,
                extent_size_aligned: true,
                aligned: false,
                pvs: vec!["/dev/pmem2".into()],
                lvs: vec!["lvd".into()],
            }],
            lvs: vec![
                striped,
                lv("vgd/lvd", &["pv /dev/pmem2: data area (pe_start) at 1M"]),
            ],
        });
        let want = "\
OK, no changes: facts

LVM (2 MiB alignment):
  NAME        KIND  2M   FOUND
  /dev/pmem0  pv    ok   VG vgp, pe_start 2M
  /dev/pmem2  pv    FIX  VG vgd, pe_start 1M
  vgd         vg    FIX  extent size 4M, PVs /dev/pmem2: a PV's pe_start is off 2 MiB
  vgp/lvs     lv    ok   striped, 64M, 2 stripes of 2M, 1 segment, active: /dev/mapper/vgp-lvs, max_sectors_kb 2048
  vgd/lvd     lv    FIX  linear, 100M, 1 segment, not active
                         pv /dev/pmem2: data area (pe_start) at 1M
";
        let text = render(&r);
        assert_eq!(text, want, "\n{text}");
        r.lvm_summary = Some(LvmSummary::default());
        assert_eq!(render(&r), "OK, no changes: facts\n");
    }

    /// Nested dm devices and a dm table of two segments: siblings and the branches of
    /// their ancestors are drawn through to the last of them.
    #[test]
    fn a_deeper_tree() {
        let layers = oks(&[
            "0 | mount | /mnt/l | dax=always",
            "1 | filesystem | /dev/mapper/l | ext4",
            "2 | dm | /dev/mapper/l | linear sectors 0+8192 -> 254:1 at 0",
            "2 | dm | /dev/mapper/l | linear sectors 8192+8192 -> 259:2 at 0",
            "3 | dm | /dev/mapper/inner | linear sectors 0+8192 -> 259:0 at 0",
            "4 | namespace | pm0 | fsdax",
            "3 | namespace | pm1 | fsdax",
        ]);
        let refs: Vec<&LayerAudit> = layers.iter().collect();
        let rows = tree_rows(&refs, "");
        let drawn: Vec<String> = rows
            .iter()
            .map(|r| format!("{}{} [{}]", r.prefix, r.name, r.found.len()))
            .collect();
        assert_eq!(
            drawn,
            [
                "/mnt/l [1]",
                "└─/dev/mapper/l [1]",
                "  └─/dev/mapper/l [2]",
                "    ├─/dev/mapper/inner [1]",
                "    │ └─pm0 [1]",
                "    └─pm1 [1]",
            ]
        );
        assert_eq!(rows[2].more, "    │ ");
        assert_eq!(rows[3].more, "    │ │ ");
    }

    #[test]
    fn line_diffs() {
        assert_eq!(line_diff("", "a\nb\n"), [('+', "a"), ('+', "b")]);
        assert_eq!(line_diff("a\nb\n", ""), [('-', "a"), ('-', "b")]);
        assert_eq!(
            line_diff("a\nb\nc\n", "a\nx\nc\n"),
            [(' ', "a"), ('-', "b"), ('+', "x"), (' ', "c")]
        );
    }

    /// The live printer: a line when a step starts, one when it ends.
    #[test]
    fn live_steps() {
        let s = step("mkfs", "dm device s", "mkfs.xfs", false);
        let d = step("reload_dm", "/dev/mapper/s", "reload", true);
        let mut out = Vec::new();
        let printed = {
            let mut live = LiveSteps::new(&mut out);
            for (index, step, outcome) in [
                (0, &d, StepOutcome::Done),
                (1, &s, StepOutcome::Skipped("already made")),
            ] {
                live.on(Progress::Started {
                    index,
                    total: 2,
                    step,
                });
                live.on(Progress::Ended {
                    index,
                    total: 2,
                    step,
                    outcome,
                });
            }
            live.lines()
        };
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(printed, 4);
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines[0], "[1/2] reload_dm /dev/mapper/s (DESTRUCTIVE) ...");
        assert!(
            lines[1].starts_with("[1/2] reload_dm /dev/mapper/s (DESTRUCTIVE): done ("),
            "{text}"
        );
        assert_eq!(lines[2], "[2/2] mkfs dm device s ...");
        assert!(
            lines[3].starts_with("[2/2] mkfs dm device s: skipped (")
                && lines[3].ends_with(" s): already made"),
            "{text}"
        );
    }
}
