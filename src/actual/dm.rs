//! Device-mapper table lines: the kernel's text form (`dmsetup table`, `DM_TABLE_STATUS`)
//! as a typed value with a round-tripping `FromStr`/`Display` pair, and the pure
//! derivation of the tables we build (linear concatenation, striped length
//! `stripes x floor(min member / chunk) x chunk`).

use crate::units::Sectors;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A block device number, `major:minor` as dm tables and mountinfo print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Devno {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl fmt::Display for Devno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl FromStr for Devno {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not major:minor"))?;
        Ok(Devno {
            major: a.parse().map_err(|_| format!("{s:?} is not major:minor"))?,
            minor: b.parse().map_err(|_| format!("{s:?} is not major:minor"))?,
        })
    }
}

impl TryFrom<String> for Devno {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Devno> for String {
    fn from(d: Devno) -> String {
        d.to_string()
    }
}

/// One target line of a dm table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLine {
    /// Start sector within the dm device.
    pub start: Sectors,
    /// Length in sectors.
    pub length: Sectors,
    /// The target and its parameters.
    pub target: Target,
}

/// A dm target with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `linear <dev> <offset>`.
    Linear {
        /// Member.
        dev: Devno,
        /// Offset into the member.
        offset: Sectors,
    },
    /// `striped <n> <chunk> <dev> <offset> ...`.
    Striped {
        /// Chunk size.
        chunk: Sectors,
        /// Members with offsets.
        stripes: Vec<(Devno, Sectors)>,
    },
    /// Anything else (crypt, thin, raid ...): kept verbatim, never DAX-capable for us.
    Other {
        /// Target type name.
        kind: String,
        /// Parameters, verbatim.
        params: String,
    },
}

impl TableLine {
    /// Whether DAX can pass through this target (linear and striped can).
    pub fn supports_dax(&self) -> bool {
        !matches!(self.target, Target::Other { .. })
    }
    /// The member devices this line maps to.
    pub fn members(&self) -> Vec<Devno> {
        match &self.target {
            Target::Linear { dev, .. } => vec![*dev],
            Target::Striped { stripes, .. } => stripes.iter().map(|(d, _)| *d).collect(),
            Target::Other { .. } => Vec::new(),
        }
    }
}

impl fmt::Display for TableLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.start, self.length)?;
        match &self.target {
            Target::Linear { dev, offset } => write!(f, "linear {dev} {offset}"),
            Target::Striped { chunk, stripes } => {
                write!(f, "striped {} {chunk}", stripes.len())?;
                for (d, o) in stripes {
                    write!(f, " {d} {o}")?;
                }
                Ok(())
            }
            Target::Other { kind, params } => write!(f, "{kind} {params}"),
        }
    }
}

impl FromStr for TableLine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("dm table line {s:?}: {why}");
        let mut w = s.split_whitespace();
        let num = |x: Option<&str>, what: &str| -> Result<u64, String> {
            x.ok_or_else(|| bad(&format!("missing {what}")))?
                .parse::<u64>()
                .map_err(|_| bad(&format!("{what} is not a number")))
        };
        let start = Sectors(num(w.next(), "start")?);
        let length = Sectors(num(w.next(), "length")?);
        let kind = w.next().ok_or_else(|| bad("missing target type"))?;
        let rest: Vec<&str> = w.collect();
        let target = match kind {
            "linear" => {
                if rest.len() != 2 {
                    return Err(bad("linear takes <dev> <offset>"));
                }
                Target::Linear {
                    dev: rest[0].parse().map_err(|e: String| bad(&e))?,
                    offset: Sectors(num(Some(rest[1]), "offset")?),
                }
            }
            "striped" => {
                let n = num(rest.first().copied(), "stripe count")?;
                let chunk = Sectors(num(rest.get(1).copied(), "chunk")?);
                // checked: a count near u64::MAX must be an error, not an overflow
                let pairs = rest.len().saturating_sub(2) / 2;
                if n == 0 || u64::try_from(pairs).ok() != Some(n) || rest.len() != 2 + 2 * pairs {
                    return Err(bad("striped takes <n> <chunk> and n <dev> <offset> pairs"));
                }
                let mut stripes = Vec::with_capacity(pairs);
                for pair in rest[2..].chunks(2) {
                    stripes.push((
                        pair[0].parse().map_err(|e: String| bad(&e))?,
                        Sectors(num(Some(pair[1]), "offset")?),
                    ));
                }
                Target::Striped { chunk, stripes }
            }
            other => Target::Other {
                kind: other.to_string(),
                params: rest.join(" "),
            },
        };
        Ok(TableLine {
            start,
            length,
            target,
        })
    }
}

/// Parse a whole table (one line per target; blank lines ignored).
pub fn parse_table(lines: &[String]) -> Result<Vec<TableLine>, String> {
    lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.parse())
        .collect()
}

/// The table text of typed lines.
pub fn table_text(lines: &[TableLine]) -> Vec<String> {
    lines.iter().map(ToString::to_string).collect()
}

/// A dm device's live table: its lines parsed once, when probed or read from a snapshot,
/// so that no one parses the kernel text again.
///
/// On the wire (facts, `--actual` snapshots) it is the list of kernel text lines it
/// always was. Text that does not read as lines (a malformed line) or is not exactly
/// their text (blank lines, odd spacing) is kept as read: a snapshot writes back
/// unchanged and messages quote it; only planning over it is refused, as before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmTable {
    /// The lines, or why one of them does not read (the message names the line).
    lines: Result<Vec<TableLine>, String>,
    /// The text as read, when it is not exactly the text of `lines`.
    verbatim: Option<Vec<String>>,
}

impl DmTable {
    /// A table of typed lines.
    pub fn new(lines: Vec<TableLine>) -> Self {
        DmTable {
            lines: Ok(lines),
            verbatim: None,
        }
    }
    /// A table from its kernel text (one line per target; blank lines ignored).
    pub fn read(text: Vec<String>) -> Self {
        let lines = parse_table(&text);
        let exact = lines.as_ref().is_ok_and(|l| {
            l.len() == text.len() && l.iter().zip(&text).all(|(l, t)| l.to_string() == *t)
        });
        DmTable {
            lines,
            verbatim: (!exact).then_some(text),
        }
    }
    /// The typed lines, or why a line does not read.
    pub fn lines(&self) -> Result<&[TableLine], &str> {
        match &self.lines {
            Ok(l) => Ok(l),
            Err(e) => Err(e),
        }
    }
    /// The kernel text, one string per line (as read, for a table read from text).
    pub fn text(&self) -> Vec<String> {
        match (&self.verbatim, &self.lines) {
            (Some(t), _) => t.clone(),
            (None, Ok(l)) => table_text(l),
            (None, Err(_)) => Vec::new(),
        }
    }
    /// No table loaded (not even a blank line of one).
    pub fn is_empty(&self) -> bool {
        match (&self.verbatim, &self.lines) {
            (Some(t), _) => t.is_empty(),
            (None, Ok(l)) => l.is_empty(),
            (None, Err(_)) => false,
        }
    }
    /// Drop every line (no live table).
    pub fn clear(&mut self) {
        *self = DmTable::default();
    }
}

impl Default for DmTable {
    fn default() -> Self {
        DmTable::new(Vec::new())
    }
}

impl Serialize for DmTable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.text().serialize(s)
    }
}

impl<'de> Deserialize<'de> for DmTable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(d).map(DmTable::read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_lines_round_trip() {
        for l in [
            "0 1040384 striped 2 4096 259:0 0 259:1 0",
            "0 520192 linear 259:0 0",
            "520192 520192 linear 259:1 0",
            "0 2048 crypt aes-xts-plain64 :64:logon:cryptsetup:x 0 8:1 4096",
        ] {
            let parsed: TableLine = l.parse().expect("parses");
            assert_eq!(parsed.to_string(), l);
        }
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for l in [
            "",
            "0",
            "0 x linear 1:2 0",
            "0 8 linear 1:2",
            "0 8 linear 12 0",
            "0 8 striped 3 8 1:1 0 1:2 0",
            "0 8 striped 0 8",
            "0 8 striped x 8",
            "0 8 striped 9223372036854775808 8 1:1 0",
            "0 8 striped 18446744073709551615 8",
        ] {
            assert!(l.parse::<TableLine>().is_err(), "{l:?}");
        }
    }

    #[test]
    fn a_table_is_typed_once_and_the_same_text_on_the_wire() {
        let text = r#"["0 4120576 striped 2 4096 259:2 0 259:3 0"]"#;
        let t: DmTable = serde_json::from_str(text).expect("reads");
        assert_eq!(t.lines().map(<[TableLine]>::len), Ok(1));
        assert_eq!(t, DmTable::new(parse_table(&t.text()).expect("parses")));
        assert_eq!(serde_json::to_string(&t).ok().as_deref(), Some(text));
        // what does not read, or is not exactly the lines' text, writes back as read
        for text in [
            r#"["0 8 striped x"]"#,
            r#"["0 8192 error"]"#,
            r#"["","0  8 linear 1:2 0"]"#,
            r#"["0 8 error "]"#,
        ] {
            let t: DmTable = serde_json::from_str(text).expect("reads");
            assert_eq!(serde_json::to_string(&t).ok().as_deref(), Some(text));
            assert!(!t.is_empty());
        }
        let bad: DmTable = serde_json::from_str(r#"["0 8 striped x"]"#).expect("reads");
        assert_eq!(
            bad.lines().err(),
            Some(r#"dm table line "0 8 striped x": stripe count is not a number"#)
        );
        assert!(DmTable::default().is_empty());
    }
}
