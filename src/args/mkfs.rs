//! Force flags in `mkfs_options`: refused at validation, because forcing comes only from
//! `allow_data_loss`. The planner asks for mke2fs's `-F` and mkfs.xfs's `-f` itself (the
//! `force` of `Op::Mkfs`, spelled by `op::argv::mkfs`), and only where it has found
//! that overwriting is allowed; a force among the user's words would let mkfs overwrite
//! a signature that the planner does not know about.
//!
//! The words are read the way the tool's getopt reads them (both tools use plain
//! `getopt`, no long options, and GNU getopt looks at every word, wherever it stands):
//! a word `-abc` is a cluster of flags, and an option that takes a value ends the
//! cluster and takes the rest of the word, or the next word when nothing is left. So
//! `-qF` and `-FF` force mke2fs, `-Kf` forces mkfs.xfs, while `-L -F` is a label and
//! `-Ffoo` cannot hide inside `-d` (`-dfile` is mkfs.xfs's `-d file`). Stricter than
//! getopt on purpose: a `--` does not end the check, a character the tool does not know
//! does not end its cluster (getopt would refuse the word, mkfs would stop with its
//! usage), and `--force` is refused under either tool, although neither knows it.

use super::FsType;

/// mke2fs's getopt string (e2fsprogs 1.47, `misc/mke2fs.c`): `F` forces, given twice
/// even over a mounted device; `f` is the obsolete fragment size, not a force.
const MKE2FS_GETOPT: &str = "b:cd:e:g:i:jl:m:no:qr:s:t:vC:DE:FG:I:J:KL:M:N:O:R:ST:U:Vz:";
/// mkfs.xfs's getopt string (xfsprogs 6.x, `mkfs/xfs_mkfs.c`): `f` forces.
const MKFS_XFS_GETOPT: &str = "b:c:d:i:l:L:m:n:KNp:qr:s:CfV";

/// How one tool reads its options.
struct Tool {
    /// The program the module runs.
    program: &'static str,
    /// Its getopt string.
    getopt: &'static str,
    /// The flag that forces.
    force: char,
}

const MKE2FS: Tool = Tool {
    program: "mkfs.ext4",
    getopt: MKE2FS_GETOPT,
    force: 'F',
};
const MKFS_XFS: Tool = Tool {
    program: "mkfs.xfs",
    getopt: MKFS_XFS_GETOPT,
    force: 'f',
};

impl Tool {
    fn for_fs(fstype: FsType) -> Tool {
        match fstype {
            FsType::Ext4 => MKE2FS,
            FsType::Xfs => MKFS_XFS,
        }
    }

    /// Whether option `c` takes a value (`None`: the tool does not know `c`).
    fn takes_value(&self, c: char) -> Option<bool> {
        let mut chars = self.getopt.chars().peekable();
        while let Some(o) = chars.next() {
            let value = chars.peek() == Some(&':');
            if value {
                chars.next();
            }
            if o == c {
                return Some(value);
            }
        }
        None
    }

    /// The index of each word that forces this tool (`None` words did not read: they
    /// are taken as values, never as flags).
    fn forcing_words(&self, words: &[Option<&str>]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut value_next = false;
        for (j, w) in words.iter().enumerate() {
            if std::mem::take(&mut value_next) {
                continue; // the value of the option that ended the previous word
            }
            let Some(w) = w else { continue };
            if *w == "--force" || w.starts_with("--force=") {
                out.push(j);
                continue;
            }
            let Some(cluster) = w.strip_prefix('-') else {
                continue; // an operand
            };
            for (k, c) in cluster.char_indices() {
                if c == self.force {
                    out.push(j);
                    break;
                }
                if self.takes_value(c) == Some(true) {
                    value_next = k + c.len_utf8() == cluster.len();
                    break;
                }
            }
        }
        out
    }
}

/// The words of `mkfs_options` that force mkfs, each with the message to report: for
/// `fstype`'s tool, or for either tool while the type is unknown (it did not read).
pub fn force_flags(fstype: Option<FsType>, words: &[Option<&str>]) -> Vec<(usize, String)> {
    let tools = match fstype {
        Some(t) => vec![Tool::for_fs(t)],
        None => vec![MKE2FS, MKFS_XFS],
    };
    let mut out: Vec<(usize, String)> = Vec::new();
    for tool in tools {
        for j in tool.forcing_words(words) {
            if out.iter().any(|(seen, _)| *seen == j) {
                continue;
            }
            let w = words.get(j).copied().flatten().unwrap_or_default();
            out.push((
                j,
                format!(
                    "{w:?} makes {} force (-{}); forcing comes only from allow_data_loss: the module passes -{} itself where it has found that overwriting the device is allowed",
                    tool.program, tool.force, tool.force
                ),
            ));
        }
    }
    out.sort_by_key(|(j, _)| *j);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forcing(fstype: Option<FsType>, words: &[&str]) -> Vec<usize> {
        let words: Vec<Option<&str>> = words.iter().map(|w| Some(*w)).collect();
        force_flags(fstype, &words)
            .into_iter()
            .map(|(j, _)| j)
            .collect()
    }

    #[test]
    fn mke2fs_force_in_any_spelling() {
        let ext4 = Some(FsType::Ext4);
        for w in [
            "-F",
            "-FF",
            "-qF",
            "-Fq",
            "-jKF",
            "--force",
            "--force=1",
            "-q F",
            "--F",
        ] {
            assert_eq!(forcing(ext4, &["-m", "0", w]), [2], "{w}");
        }
        assert_eq!(forcing(ext4, &["-F", "-F"]), [0, 1]);
    }

    #[test]
    fn mkfs_xfs_force_in_any_spelling() {
        let xfs = Some(FsType::Xfs);
        for w in ["-f", "-ff", "-Kf", "-qKf", "-fq", "--force"] {
            assert_eq!(forcing(xfs, &[w, "-m", "crc=1"]), [0], "{w}");
        }
    }

    #[test]
    fn values_and_other_tools_flags_are_not_forces() {
        let ext4 = Some(FsType::Ext4);
        let xfs = Some(FsType::Xfs);
        // a value of an option, attached or in the next word
        assert_eq!(forcing(ext4, &["-L", "-F"]), Vec::<usize>::new());
        assert_eq!(forcing(ext4, &["-LF"]), Vec::<usize>::new());
        assert_eq!(
            forcing(ext4, &["-E", "stride=16", "-O", "^has_journal"]),
            Vec::<usize>::new()
        );
        assert_eq!(
            forcing(ext4, &["-U", "F00DCAFE-0000-0000-0000-000000000000"]),
            Vec::<usize>::new()
        );
        assert_eq!(forcing(xfs, &["-dfile,name=x"]), Vec::<usize>::new());
        assert_eq!(forcing(xfs, &["-d", "-f"]), Vec::<usize>::new());
        assert_eq!(
            forcing(xfs, &["-m", "reflink=0", "-K"]),
            Vec::<usize>::new()
        );
        // mke2fs's -f is the fragment size; mkfs.xfs has no -F
        assert_eq!(forcing(ext4, &["-f", "4096"]), Vec::<usize>::new());
        assert_eq!(forcing(xfs, &["-F"]), Vec::<usize>::new());
        // an option with a value at the end of one word takes the next, even a force
        assert_eq!(forcing(ext4, &["-qL", "-F", "-F"]), [2]);
        // a word that did not read is a value, not a flag
        let words = [Some("-L"), None, Some("-F")];
        assert_eq!(force_flags(ext4, &words).len(), 1);
    }

    #[test]
    fn an_unknown_type_checks_both_tools() {
        assert_eq!(forcing(None, &["-F", "-q", "-f"]), [0, 2]);
        let msgs = force_flags(None, &[Some("-Kf")]);
        assert!(msgs[0].1.contains("mkfs.xfs force (-f)"), "{msgs:?}");
    }
}
