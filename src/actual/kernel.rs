//! The running kernel's release, and how it spells the DAX mount option.
//!
//! `dax=always|inode|never` exists for ext4 and xfs from Linux 5.8; before that the only
//! form is a bare `dax` (DAX on for every file, what `dax=always` means later), and no
//! `dax` option means DAX off. A 5.4 kernel refuses `dax=always` ("Unrecognized mount
//! option"), so the option is built for the kernel found ([`DaxSyntax::of`]), and what
//! mountinfo shows is read the same way ([`DaxSyntax::shown`]):
//!
//! | kernel | `dax: always` | `dax: inode` | `dax: never` | mountinfo without a dax option |
//! |---|---|---|---|---|
//! | 5.8 or later, or not known | `dax=always` | `dax=inode` | `dax=never` | not shown (`None`, taken as never) |
//! | before 5.8 | `dax` | refused: the mode does not exist | no dax option | never |
//!
//! "Not known" is a snapshot captured before the kernel release was recorded, or a
//! release string without `X.Y` at its start: they keep the 5.8 form, as before.
//! Both forms show `dax` or `dax=always` in mountinfo as `always`.

use crate::args::DaxMode;
use std::fmt;

/// A kernel version (`6.1.0-27-amd64` is 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
}

impl KernelVersion {
    /// The version at the start of a release string (`uname -r`), if it has `X.Y`.
    pub fn parse(release: &str) -> Option<KernelVersion> {
        let mut parts = release.trim().splitn(3, '.');
        let number = |s: Option<&str>| -> Option<u32> {
            let s = s?;
            let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            s.get(..end).filter(|d| !d.is_empty())?.parse().ok()
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        Some(KernelVersion { major, minor })
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The first kernel with `dax=always|inode|never` on ext4 and xfs.
pub const DAX_MODES_SINCE: KernelVersion = KernelVersion { major: 5, minor: 8 };

/// How a kernel spells the DAX mount option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaxSyntax {
    /// `dax=always|inode|never` (5.8 and later; also when the kernel is not known).
    Modes,
    /// Only a bare `dax` (before 5.8): on, or off without it; no inode mode.
    Flag,
}

/// `dax: inode` asked of a kernel that has no such mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoInodeMode;

impl DaxSyntax {
    /// The syntax of the kernel with this release (`None`: not known, the 5.8 form).
    pub fn of(release: Option<&str>) -> DaxSyntax {
        match release.and_then(KernelVersion::parse) {
            Some(v) if v < DAX_MODES_SINCE => DaxSyntax::Flag,
            _ => DaxSyntax::Modes,
        }
    }

    /// The mount option that asks for `dax` (`None`: no option, which is DAX off on a
    /// kernel before 5.8); an error for `inode` there.
    pub fn option(self, dax: DaxMode) -> Result<Option<String>, NoInodeMode> {
        match (self, dax) {
            (DaxSyntax::Modes, d) => Ok(Some(format!("dax={}", d.as_str()))),
            (DaxSyntax::Flag, DaxMode::Always) => Ok(Some("dax".to_string())),
            (DaxSyntax::Flag, DaxMode::Never) => Ok(None),
            (DaxSyntax::Flag, DaxMode::Inode) => Err(NoInodeMode),
        }
    }

    /// The DAX mode of a mount, from the value of its `dax` option in mountinfo:
    /// `None` when there is no `dax` option, `Some(None)` for a bare `dax`,
    /// `Some(Some(v))` for `dax=v`. A bare `dax` is `always` on every kernel; no option
    /// is `never` before 5.8 and not shown (`None`) later; an unknown value is `None`.
    pub fn shown(self, value: Option<Option<&str>>) -> Option<DaxMode> {
        match value {
            None => (self == DaxSyntax::Flag).then_some(DaxMode::Never),
            Some(None | Some("always")) => Some(DaxMode::Always),
            Some(Some("inode")) => Some(DaxMode::Inode),
            Some(Some("never")) => Some(DaxMode::Never),
            Some(Some(_)) => None,
        }
    }
}

/// The options to mount with: the DAX option as the running kernel spells it (none for
/// `never` before 5.8), then the declared ones. `inode` before 5.8 has no form and is
/// refused by the planner first; here it gets no option.
pub fn mount_options(syntax: DaxSyntax, dax: DaxMode, options: &[String]) -> Vec<String> {
    let mut opts: Vec<String> = syntax.option(dax).ok().flatten().into_iter().collect();
    opts.extend(options.iter().cloned());
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_release_strings() {
        let v = |s: &str| KernelVersion::parse(s).map(|v| (v.major, v.minor));
        assert_eq!(v("6.1.0-27-amd64"), Some((6, 1)));
        assert_eq!(v("6.12.117+deb12-amd64"), Some((6, 12)));
        assert_eq!(v("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(v("4.18.0-553.el8_10.x86_64"), Some((4, 18)));
        assert_eq!(v("5.14.21-150500.55.19-default"), Some((5, 14)));
        assert_eq!(v("5.8\n"), Some((5, 8)));
        assert_eq!(v("6.0-rc1"), Some((6, 0)));
        assert_eq!(v("5"), None);
        assert_eq!(v(""), None);
        assert_eq!(v("x.y"), None);
        assert_eq!(v("99999999999.1"), None);
        let tip = KernelVersion::parse("5.10.0").map(|v| v.to_string());
        assert_eq!(tip.as_deref(), Some("5.10"));
    }

    #[test]
    fn the_syntax_follows_the_version() {
        assert_eq!(DaxSyntax::of(Some("5.4.0-150-generic")), DaxSyntax::Flag);
        assert_eq!(DaxSyntax::of(Some("5.7.19")), DaxSyntax::Flag);
        assert_eq!(
            DaxSyntax::of(Some("4.18.0-553.el8_10.x86_64")),
            DaxSyntax::Flag
        );
        assert_eq!(DaxSyntax::of(Some("5.8.0")), DaxSyntax::Modes);
        assert_eq!(DaxSyntax::of(Some("5.10.0-30-amd64")), DaxSyntax::Modes);
        assert_eq!(DaxSyntax::of(Some("6.1.0-27-amd64")), DaxSyntax::Modes);
        // not known: as before the kernel was recorded
        assert_eq!(DaxSyntax::of(None), DaxSyntax::Modes);
        assert_eq!(DaxSyntax::of(Some("garbage")), DaxSyntax::Modes);
    }

    #[test]
    fn mount_options_of_both_forms() {
        let o = |s: DaxSyntax, d| s.option(d);
        assert_eq!(
            o(DaxSyntax::Modes, DaxMode::Always),
            Ok(Some("dax=always".into()))
        );
        assert_eq!(
            o(DaxSyntax::Modes, DaxMode::Inode),
            Ok(Some("dax=inode".into()))
        );
        assert_eq!(
            o(DaxSyntax::Modes, DaxMode::Never),
            Ok(Some("dax=never".into()))
        );
        assert_eq!(o(DaxSyntax::Flag, DaxMode::Always), Ok(Some("dax".into())));
        assert_eq!(o(DaxSyntax::Flag, DaxMode::Never), Ok(None));
        assert_eq!(o(DaxSyntax::Flag, DaxMode::Inode), Err(NoInodeMode));
    }

    #[test]
    fn what_mountinfo_shows_in_both_forms() {
        for s in [DaxSyntax::Modes, DaxSyntax::Flag] {
            assert_eq!(s.shown(Some(None)), Some(DaxMode::Always), "bare dax");
            assert_eq!(s.shown(Some(Some("always"))), Some(DaxMode::Always));
            assert_eq!(s.shown(Some(Some("never"))), Some(DaxMode::Never));
            assert_eq!(s.shown(Some(Some("bogus"))), None);
        }
        assert_eq!(
            DaxSyntax::Modes.shown(Some(Some("inode"))),
            Some(DaxMode::Inode)
        );
        assert_eq!(DaxSyntax::Flag.shown(None), Some(DaxMode::Never));
        assert_eq!(DaxSyntax::Modes.shown(None), None);
    }
}
