//! Where a real run's time goes, for the result's `timing`: the external programs run,
//! the probes (and their parts), the operations. A [`Recorder`] is owned by
//! [`super::RealSystem`] (no process-wide state) and read through
//! [`crate::system::System::timing`].

use crate::system::timing::{ExternalRun, OperationTime, Timing};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

/// The times of one system's work, from `start` (the process start, as the binary
/// says it).
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    external: RefCell<Vec<ExternalRun>>,
    /// Probes made: (count, milliseconds).
    probes: RefCell<(u32, f64)>,
    /// Re-probes checked against a full probe: (count, milliseconds of the full probes).
    checks: RefCell<(u32, f64)>,
    /// Milliseconds by part of the probe, summed over the probes.
    probe_parts: RefCell<BTreeMap<String, f64>>,
    operations: RefCell<Vec<OperationTime>>,
    /// Milliseconds inside kernel calls made on purpose (BLKZEROOUT, dm ioctls,
    /// mount(2)), by call.
    kernel: RefCell<BTreeMap<String, f64>>,
    /// Own time by phase, and where the last phase ended (see [`Recorder::mark`]).
    phases: RefCell<Phases>,
    /// Where the tools this run ran were found (looked up once each).
    pub tools: super::lookup::Found,
}

/// Own time by phase: the end of the last phase and the time outside this program's own
/// work (probes, external programs, kernel calls, checks) at that instant.
#[derive(Debug)]
struct Phases {
    at: Instant,
    others_ms: f64,
    ms: BTreeMap<String, f64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new(Instant::now())
    }
}

impl Recorder {
    /// A recorder counting from `start`.
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            external: RefCell::new(Vec::new()),
            probes: RefCell::new((0, 0.0)),
            checks: RefCell::new((0, 0.0)),
            probe_parts: RefCell::new(BTreeMap::new()),
            operations: RefCell::new(Vec::new()),
            kernel: RefCell::new(BTreeMap::new()),
            phases: RefCell::new(Phases {
                at: start,
                others_ms: 0.0,
                ms: BTreeMap::new(),
            }),
            tools: Default::default(),
        }
    }

    /// Milliseconds from the start to `t`.
    pub fn since_start_ms(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64() * 1e3
    }

    /// An external program ran from `started` until now: `command` is its name and
    /// first argument.
    pub fn external(&self, command: String, started: Instant) {
        let ms = ms_since(started);
        let start_ms = self.since_start_ms(started);
        self.external.borrow_mut().push(ExternalRun {
            command,
            start_ms,
            ms,
        });
    }

    /// Milliseconds spent in external programs so far (folded from +0.0: an empty f64
    /// `sum()` is -0.0).
    pub fn external_ms(&self) -> f64 {
        self.external.borrow().iter().fold(0.0, |a, x| a + x.ms)
    }

    /// Make the kernel call (or calls) `f` on purpose, adding its time to the kernel
    /// time of `call` (`BLKZEROOUT`, `DM_TABLE_LOAD`, `mount`): the time the kernel works
    /// for an operation (zeroing, a dm table made live, a filesystem mounted), counted
    /// apart from this program's own time. Only the call itself is inside `f`.
    pub fn kernel<T>(&self, call: &str, f: impl FnOnce() -> T) -> T {
        timed(&self.kernel, call, f)
    }

    /// Milliseconds spent in kernel calls made on purpose so far.
    pub fn kernel_ms(&self) -> f64 {
        self.kernel.borrow().values().fold(0.0, |a, x| a + x)
    }

    /// Run one part of the probe, adding its time to the part `name`.
    pub fn part<T>(&self, name: &str, f: impl FnOnce() -> T) -> T {
        timed(&self.probe_parts, name, f)
    }

    /// A probe ran from `started` until now.
    pub fn probe(&self, started: Instant) {
        let mut p = self.probes.borrow_mut();
        p.0 += 1;
        p.1 += ms_since(started);
    }

    /// A recorder for work that is not the run's own (the full probe of a re-probe
    /// check), counting from the same start.
    pub fn scratch(&self) -> Recorder {
        Recorder::new(self.start)
    }

    /// A re-probe was checked against a full probe, from `started` until now.
    pub fn reprobe_check(&self, started: Instant) {
        let mut c = self.checks.borrow_mut();
        c.0 += 1;
        c.1 += started.elapsed().as_secs_f64() * 1e3;
    }

    /// An operation ran.
    pub fn operation(&self, op: OperationTime) {
        self.operations.borrow_mut().push(op);
    }

    /// Milliseconds so far that are not this program's own work: probes, external
    /// programs, kernel calls made on purpose, re-probe checks.
    fn others_ms(&self) -> f64 {
        self.probes.borrow().1 + self.checks.borrow().1 + self.external_ms() + self.kernel_ms()
    }

    /// This program's own time since the last phase ended (or the start), and the
    /// instant and outside time it was taken at.
    fn own_since_mark(&self) -> (f64, Instant, f64) {
        let now = Instant::now();
        let others = self.others_ms();
        let p = self.phases.borrow();
        let span = now.saturating_duration_since(p.at).as_secs_f64() * 1e3;
        ((span - (others - p.others_ms)).max(0.0), now, others)
    }

    /// The phase `phase` of the run ends now: this program's own time since the last
    /// phase ended is added to it (the result's `timing.own_by_phase_ms`).
    pub fn mark(&self, phase: &str) {
        let (own, now, others) = self.own_since_mark();
        let mut p = self.phases.borrow_mut();
        *p.ms.entry(phase.to_string()).or_default() += own;
        p.at = now;
        p.others_ms = others;
    }

    /// Everything recorded, with the wall time from the start to now and the peak
    /// memory of this process.
    pub fn timing(&self) -> Timing {
        let (probes, probe_ms) = *self.probes.borrow();
        let (reprobe_checks, reprobe_check_ms) = *self.checks.borrow();
        // what follows the last phase is the result's
        let mut own_by_phase_ms = self.phases.borrow().ms.clone();
        if !own_by_phase_ms.is_empty() {
            *own_by_phase_ms.entry("result".into()).or_default() += self.own_since_mark().0;
        }
        Timing {
            own_by_phase_ms,
            probes,
            probe_ms,
            probe_parts_ms: self.probe_parts.borrow().clone(),
            operations: self.operations.borrow().clone(),
            wall_ms: ms_since(self.start),
            external_ms: self.external_ms(),
            external: self.external.borrow().clone(),
            kernel_ms: self.kernel_ms(),
            kernel_calls_ms: self.kernel.borrow().clone(),
            reprobe_checks,
            reprobe_check_ms,
            peak_rss_kib: peak_rss_kib(),
        }
    }
}

/// Milliseconds from `t` until now.
fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Run `f`, adding its milliseconds to `key` in `times`.
fn timed<T>(times: &RefCell<BTreeMap<String, f64>>, key: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    *times.borrow_mut().entry(key.to_string()).or_default() += ms_since(started);
    out
}

/// `VmHWM` of this process: the peak of this program alone (getrusage's maxrss would
/// include the parent's memory copied by fork before the exec).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_what_it_is_told_and_nothing_is_shared() {
        let r = Recorder::default();
        assert_eq!(r.external_ms().to_string(), "0", "not -0");
        let n = r.part("dm", || 7);
        assert_eq!(n, 7);
        r.probe(Instant::now());
        r.external("ndctl create-namespace".into(), Instant::now());
        assert_eq!(r.kernel_ms().to_string(), "0", "not -0");
        assert_eq!(r.kernel("BLKZEROOUT", || 3), 3);
        let t = r.timing();
        assert_eq!(t.kernel_calls_ms.keys().collect::<Vec<_>>(), ["BLKZEROOUT"]);
        assert_eq!(t.kernel_ms, t.kernel_calls_ms["BLKZEROOUT"]);
        assert_eq!((t.probes, t.external.len()), (1, 1));
        assert_eq!(t.probe_parts_ms.keys().collect::<Vec<_>>(), ["dm"]);
        assert_eq!(t.external[0].command, "ndctl create-namespace");
        assert!(t.wall_ms >= t.external[0].start_ms);
        let other = Recorder::default().timing();
        assert_eq!((other.probes, other.external.len()), (0, 0));
        assert!(other.own_by_phase_ms.is_empty(), "no phase marked");
    }

    /// A phase gets the wall time since the last mark less what probes, programs and
    /// kernel calls took in it; what follows the last mark is `result`; the phases and
    /// the probes add up to the wall time less programs and kernel calls.
    #[test]
    fn own_time_by_phase_leaves_out_probes_programs_and_kernel_calls() {
        let pause = || std::thread::sleep(std::time::Duration::from_millis(20));
        let r = Recorder::default();
        pause();
        r.mark("start");
        let probe = Instant::now();
        pause();
        r.probe(probe);
        r.mark("plan");
        let ran = Instant::now();
        pause();
        r.external("mkfs.xfs -q".into(), ran);
        r.kernel("mount", pause);
        pause();
        r.mark("steps");
        r.mark("steps");
        let t = r.timing();
        let p = &t.own_by_phase_ms;
        assert_eq!(
            p.keys().collect::<Vec<_>>(),
            ["plan", "result", "start", "steps"]
        );
        assert!(p["start"] >= 20.0, "{p:?}");
        assert!(p["plan"] < 10.0, "the probe is not the plan's: {p:?}");
        assert!(
            p["steps"] >= 20.0 && p["steps"] < t.external_ms + t.kernel_ms,
            "one pause of three: {p:?}"
        );
        let own: f64 = p.values().sum();
        let rest = t.wall_ms - t.probe_ms - t.external_ms - t.kernel_ms;
        assert!((own - rest).abs() < 1.0, "{own} against {rest}");
    }
}
