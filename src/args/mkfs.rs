//! The user's `mkfs_options`, read once, the way the tool reads them: every layer that
//! looks into those words (validation here, the planner's geometry in
//! `plan::filesystem`, the superblock a mkfs makes in [`crate::geometry`]) reads the
//! typed words [`read`] yields, never the text.
//!
//! The words are read the way the tool's getopt reads them (both tools use plain
//! `getopt`, no long options, and GNU getopt looks at every word, wherever it stands):
//! a word `-abc` is a cluster of flags, and an option that takes a value ends the
//! cluster and takes the rest of the word, or the next word when nothing is left. So
//! `-qF` and `-FF` force mke2fs, `-Kf` forces mkfs.xfs, while `-L -F` is a label and
//! `-Ffoo` cannot hide inside `-d` (`-dfile` is mkfs.xfs's `-d file`); `-Estride=512`
//! is `-E stride=512`, and `-qE` takes the next word as its value. The value of `-E`
//! (mke2fs) and of `-b`, `-d`, `-l`, `-m` (mkfs.xfs) is a list of sub-options
//! `key[=value]` separated by commas, as the tools' `getsubopt`-style parsers split it.
//! Stricter than getopt on purpose: a `--` does not end the reading, a character the
//! tool does not know does not end its cluster (getopt would refuse the word, mkfs
//! would stop with its usage), and `--force` is a force under either tool, although
//! neither knows it.
//!
//! Force flags are refused at validation ([`force_flags`]), because forcing comes only
//! from `allow_data_loss`. The planner asks for mke2fs's `-F` and mkfs.xfs's `-f` itself
//! (the `force` of `Op::Mkfs`, spelled by `op::argv::mkfs`), and only where it has
//! found that overwriting is allowed; a force among the user's words would let mkfs
//! overwrite a signature that the planner does not know about.

use super::FsType;
use crate::units::{parse_size, Bytes};

/// mke2fs's getopt string (e2fsprogs 1.47, `misc/mke2fs.c`): `F` forces, given twice
/// even over a mounted device; `f` is the obsolete fragment size, not a force.
const MKE2FS_GETOPT: &str = "b:cd:e:g:i:jl:m:no:qr:s:t:vC:DE:FG:I:J:KL:M:N:O:R:ST:U:Vz:";
/// mkfs.xfs's getopt string (xfsprogs 6.x, `mkfs/xfs_mkfs.c`): `f` forces.
const MKFS_XFS_GETOPT: &str = "b:c:d:i:l:L:m:n:KNp:qr:s:CfV";

/// What one option among the user's words sets, as far as the module reads it: a force,
/// the block size, the stripe geometry, reflink, mkfs.xfs's own log or allocation
/// groups. Any other option sets nothing the module reads and yields no word. A value
/// that does not read (not a number, a size or `0`/`1`) is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MkfsOpt {
    /// The tool's force flag (mke2fs `-F`, mkfs.xfs `-f`), or `--force`.
    Force,
    /// The block size: mke2fs `-b N`, mkfs.xfs `-b size=N`.
    BlockSize(Option<Bytes>),
    /// mke2fs `-E stride=`: blocks per stripe unit.
    Stride(Option<u32>),
    /// mke2fs `-E stripe_width=` (or `stripe-width=`): blocks per full stripe.
    StripeWidth(Option<u32>),
    /// mkfs.xfs `-d su=`: the stripe unit.
    Su(Option<Bytes>),
    /// mkfs.xfs `-d sw=`: stripe units per full stripe.
    Sw(Option<u32>),
    /// mkfs.xfs `-d sunit=`: the stripe unit in 512-byte sectors.
    Sunit(Option<u32>),
    /// mkfs.xfs `-d swidth=`: the full stripe in 512-byte sectors.
    Swidth(Option<u32>),
    /// mkfs.xfs `-m reflink=` (a bare `reflink` is on, as mkfs.xfs reads it).
    Reflink(Option<bool>),
    /// mkfs.xfs's own log (`-l`, any sub-option) or allocation groups (`-d agcount=`,
    /// `-d agsize=`): the layout is the user's.
    XfsLayout,
}

/// A typed word: what one option sets, and the index (in the words given) of the word
/// the option stands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MkfsWord {
    /// The index of the word the option stands in.
    pub at: usize,
    /// What it sets.
    pub opt: MkfsOpt,
}

/// The typed words among `words` (the user's `mkfs_options`) for `fstype`'s mkfs, in
/// the order mkfs reads them (a later one overrides an earlier one where mkfs lets it).
pub fn read(fstype: FsType, words: &[String]) -> Vec<MkfsWord> {
    let words: Vec<Option<&str>> = words.iter().map(|w| Some(w.as_str())).collect();
    Tool::for_fs(fstype).read(&words)
}

/// Whether `words` hold an option `pick` chooses.
pub fn gives(words: &[MkfsWord], pick: impl Fn(MkfsOpt) -> bool) -> bool {
    words.iter().any(|w| pick(w.opt))
}

/// How one tool reads its options.
struct Tool {
    /// The filesystem it makes.
    fstype: FsType,
    /// The program the module runs.
    program: &'static str,
    /// Its getopt string.
    getopt: &'static str,
    /// The flag that forces.
    force: char,
}

const MKE2FS: Tool = Tool {
    fstype: FsType::Ext4,
    program: "mkfs.ext4",
    getopt: MKE2FS_GETOPT,
    force: 'F',
};
const MKFS_XFS: Tool = Tool {
    fstype: FsType::Xfs,
    program: "mkfs.xfs",
    getopt: MKFS_XFS_GETOPT,
    force: 'f',
};

/// One option as getopt reads it: the word it stands in, its letter, its value (`None`:
/// none, or a word that did not read).
type GetoptOption<'w> = (usize, char, Option<&'w str>);

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

    /// The options among `words` as getopt reads them (`None` words did not read: they
    /// are taken as values, never as options). `--force` reads as the force flag.
    fn options<'w>(&self, words: &[Option<&'w str>]) -> Vec<GetoptOption<'w>> {
        let mut out = Vec::new();
        let mut j = 0;
        while j < words.len() {
            let at = j;
            j += 1;
            let Some(w) = words[at] else { continue };
            if w == "--force" || w.starts_with("--force=") {
                out.push((at, self.force, None));
                continue;
            }
            let Some(cluster) = w.strip_prefix('-') else {
                continue; // an operand
            };
            for (k, c) in cluster.char_indices() {
                if self.takes_value(c) != Some(true) {
                    out.push((at, c, None));
                    continue;
                }
                // the rest of the word, or the next word
                let rest = &cluster[k + c.len_utf8()..];
                let value = if rest.is_empty() {
                    j += 1;
                    words.get(at + 1).copied().flatten()
                } else {
                    Some(rest)
                };
                out.push((at, c, value));
                break;
            }
        }
        out
    }

    /// The typed words among `words`.
    fn read(&self, words: &[Option<&str>]) -> Vec<MkfsWord> {
        let mut out = Vec::new();
        for (at, c, value) in self.options(words) {
            let mut push = |opt| out.push(MkfsWord { at, opt });
            if c == self.force {
                push(MkfsOpt::Force);
                continue;
            }
            let subopts = value
                .unwrap_or_default()
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (kv, None),
                });
            match (self.fstype, c) {
                (FsType::Ext4, 'b') if value.is_some() => {
                    push(MkfsOpt::BlockSize(value.and_then(size)))
                }
                (FsType::Ext4, 'E') => {
                    for (k, v) in subopts {
                        match k {
                            "stride" => push(MkfsOpt::Stride(v.and_then(number))),
                            "stripe_width" | "stripe-width" => {
                                push(MkfsOpt::StripeWidth(v.and_then(number)))
                            }
                            _ => {}
                        }
                    }
                }
                (FsType::Xfs, 'b') => {
                    for (k, v) in subopts {
                        if k == "size" {
                            push(MkfsOpt::BlockSize(v.and_then(size)));
                        }
                    }
                }
                (FsType::Xfs, 'd') => {
                    for (k, v) in subopts {
                        match k {
                            "su" => push(MkfsOpt::Su(v.and_then(size))),
                            "sw" => push(MkfsOpt::Sw(v.and_then(number))),
                            "sunit" => push(MkfsOpt::Sunit(v.and_then(number))),
                            "swidth" => push(MkfsOpt::Swidth(v.and_then(number))),
                            "agcount" | "agsize" => push(MkfsOpt::XfsLayout),
                            _ => {}
                        }
                    }
                }
                (FsType::Xfs, 'm') => {
                    for (k, v) in subopts {
                        if k == "reflink" {
                            push(MkfsOpt::Reflink(match v {
                                None | Some("1") => Some(true),
                                Some("0") => Some(false),
                                Some(_) => None,
                            }));
                        }
                    }
                }
                (FsType::Xfs, 'l') => push(MkfsOpt::XfsLayout),
                _ => {}
            }
        }
        out
    }
}

/// A count as the tools read it.
fn number(v: &str) -> Option<u32> {
    v.parse().ok()
}

/// A size as the module reads one (a number of bytes, or with K, M, G, T).
fn size(v: &str) -> Option<Bytes> {
    parse_size(v).ok()
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
        for w in tool.read(words) {
            let j = w.at;
            if w.opt != MkfsOpt::Force || out.iter().any(|(seen, _)| *seen == j) {
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

    fn typed(fstype: FsType, words: &[&str]) -> Vec<(usize, MkfsOpt)> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        read(fstype, &words)
            .into_iter()
            .map(|w| (w.at, w.opt))
            .collect()
    }

    #[test]
    fn words_read_as_getopt_and_the_sub_option_parsers_read_them() {
        use MkfsOpt::*;
        let mib = |m: u64| Some(Bytes(m << 20));
        // mke2fs: a value attached, in the next word, or after a cluster of flags
        for words in [
            &["-E", "stride=512,stripe_width=1024"][..],
            &["-Estride=512,stripe_width=1024"],
            &["-qE", "stride=512,stripe-width=1024"],
            &["-qEstride=512,stripe_width=1024"],
        ] {
            assert_eq!(
                typed(FsType::Ext4, words),
                [(0, Stride(Some(512))), (0, StripeWidth(Some(1024)))],
                "{words:?}"
            );
        }
        assert_eq!(
            typed(FsType::Ext4, &["-b", "4096", "-m", "0", "-b4k"]),
            [
                (0, BlockSize(Some(Bytes(4096)))),
                (4, BlockSize(Some(Bytes(4096))))
            ]
        );
        // other options, values and operands set nothing; a value is never an option
        assert_eq!(
            typed(
                FsType::Ext4,
                &["-L", "-b", "-E", "lazy_itable_init=0,stride=x"]
            ),
            [(2, Stride(None))]
        );
        assert_eq!(typed(FsType::Ext4, &["-E"]), []);
        // mkfs.xfs
        assert_eq!(
            typed(
                FsType::Xfs,
                &["-d", "su=2m,sw=2", "-Kmcrc=1,reflink=0", "-b", "size=4096"]
            ),
            [
                (0, Su(mib(2))),
                (0, Sw(Some(2))),
                (2, Reflink(Some(false))),
                (3, BlockSize(Some(Bytes(4096))))
            ]
        );
        assert_eq!(
            typed(
                FsType::Xfs,
                &["-dsunit=4096,swidth=8192", "-m", "reflink", "-mreflink=2"]
            ),
            [
                (0, Sunit(Some(4096))),
                (0, Swidth(Some(8192))),
                (1, Reflink(Some(true))),
                (3, Reflink(None))
            ]
        );
        assert_eq!(
            typed(
                FsType::Xfs,
                &["-ql", "size=64m", "-d", "agcount=4", "-L", "-l"]
            ),
            [(0, XfsLayout), (2, XfsLayout)]
        );
        // each tool's options only: mke2fs has no -m reflink, mkfs.xfs no -E
        assert_eq!(typed(FsType::Ext4, &["-m", "reflink=0", "-d", "su=1m"]), []);
        assert_eq!(typed(FsType::Xfs, &["-E", "stride=16"]), []);
        assert_eq!(
            typed(FsType::Ext4, &["-qF", "--force"]),
            [(0, Force), (1, Force)]
        );
    }

    /// A force flag before an option that takes the next word: that word is a value
    /// (getopt), not a second force.
    #[test]
    fn a_cluster_is_read_to_its_end() {
        let ext4 = Some(FsType::Ext4);
        assert_eq!(forcing(ext4, &["-Fb", "-F"]), [0]);
        assert_eq!(forcing(ext4, &["-FE", "stride=16", "-F"]), [0, 2]);
    }

    #[test]
    fn an_unknown_type_checks_both_tools() {
        assert_eq!(forcing(None, &["-F", "-q", "-f"]), [0, 2]);
        let msgs = force_flags(None, &[Some("-Kf")]);
        assert!(msgs[0].1.contains("mkfs.xfs force (-f)"), "{msgs:?}");
    }
}
