//! LVM's config syntax (`libdm/libdm-config.c`), in which the metadata text is written:
//!
//! ```text
//! vgp {                          # a section: a name, then entries in braces
//!     id = "P2YlIl-DoYe-..."     # key = value
//!     seqno = 3                  # integers (64-bit, may be negative), floats
//!     status = ["READ", "WRITE"] # arrays of strings and numbers, over lines if need be
//! }
//! ```
//! Strings are in double quotes; a backslash takes the next character as it is. A `#`
//! outside a string starts a comment to the end of the line. Names are runs of
//! characters other than blanks and `{ } [ ] = , " #`. Sections nest at most
//! [`MAX_DEPTH`] deep.

use super::LvmError;

/// How deep sections may nest (the metadata text uses 5: VG, lists, LV, segment).
pub const MAX_DEPTH: usize = 32;

/// A scalar or an array.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A number with a decimal point.
    Float(f64),
    /// A string, its escapes resolved.
    Str(String),
    /// An array of scalars.
    Array(Vec<Value>),
}

impl Value {
    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The items, if it is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// What a name is bound to.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `name = value`.
    Value(Value),
    /// `name { ... }`.
    Section(Section),
}

impl Node {
    /// The value, if it is `name = value`.
    pub fn value(&self) -> Option<&Value> {
        match self {
            Node::Value(v) => Some(v),
            Node::Section(_) => None,
        }
    }

    /// The section, if it is `name { ... }`.
    pub fn section(&self) -> Option<&Section> {
        match self {
            Node::Section(s) => Some(s),
            Node::Value(_) => None,
        }
    }
}

/// One `name = value` or `name { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The name.
    pub name: String,
    /// The line (from 1) it is on.
    pub line: usize,
    /// What it is bound to.
    pub node: Node,
}

/// The entries of a section (or of the whole text), in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    /// The entries.
    pub entries: Vec<Entry>,
}

impl Section {
    /// The entries named `name` (more than one is a fault the caller names).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.name == name)
    }
}

/// Parse `text` into its top-level entries.
pub fn parse(text: &str) -> Result<Section, LvmError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        line: 1,
    };
    let top = p.entries(0)?;
    p.skip_blank();
    match p.peek() {
        None => Ok(top),
        Some(_) => Err(p.error("`}` without a section to close")),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn error(&self, what: impl Into<String>) -> LvmError {
        LvmError::Syntax {
            line: self.line,
            what: what.into(),
        }
    }

    /// Skip blanks and comments.
    fn skip_blank(&mut self) {
        while let Some(c) = self.peek() {
            if c == b'#' {
                while self.peek().is_some_and(|c| c != b'\n') {
                    self.bump();
                }
            } else if c.is_ascii_whitespace() {
                self.bump();
            } else {
                break;
            }
        }
    }

    /// Entries up to a `}` (left unread) or the end of the text.
    fn entries(&mut self, depth: usize) -> Result<Section, LvmError> {
        let mut section = Section::default();
        loop {
            self.skip_blank();
            match self.peek() {
                None | Some(b'}') => return Ok(section),
                Some(_) => {}
            }
            let line = self.line;
            let name = self.name()?;
            self.skip_blank();
            let node = match self.bump() {
                Some(b'=') => {
                    self.skip_blank();
                    Node::Value(self.value()?)
                }
                Some(b'{') => {
                    if depth + 1 > MAX_DEPTH {
                        return Err(self.error(format!("sections nested deeper than {MAX_DEPTH}")));
                    }
                    let inner = self.entries(depth + 1)?;
                    if self.bump() != Some(b'}') {
                        return Err(LvmError::Syntax {
                            line,
                            what: format!("section `{name}` is not closed"),
                        });
                    }
                    Node::Section(inner)
                }
                other => {
                    return Err(self.error(format!(
                        "`=` or `{{` expected after `{name}`, found {}",
                        shown(other)
                    )))
                }
            };
            section.entries.push(Entry { name, line, node });
        }
    }

    fn name(&mut self) -> Result<String, LvmError> {
        let start = self.i;
        while self.peek().is_some_and(is_name_char) {
            self.bump();
        }
        match self.s.get(start..self.i) {
            Some(n) if !n.is_empty() => Ok(String::from_utf8_lossy(n).into_owned()),
            _ => Err(self.error(format!("a name expected, found {}", shown(self.peek())))),
        }
    }

    fn value(&mut self) -> Result<Value, LvmError> {
        if self.peek() != Some(b'[') {
            return self.scalar();
        }
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_blank();
            if self.peek() == Some(b']') {
                self.bump();
                return Ok(Value::Array(items));
            }
            items.push(self.scalar()?);
            self.skip_blank();
            match self.bump() {
                Some(b',') => {}
                Some(b']') => return Ok(Value::Array(items)),
                other => {
                    return Err(self.error(format!(
                        "`,` or `]` expected in an array, found {}",
                        shown(other)
                    )))
                }
            }
        }
    }

    fn scalar(&mut self) -> Result<Value, LvmError> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            other => Err(self.error(format!(
                "a string or a number expected, found {}",
                shown(other)
            ))),
        }
    }

    fn string(&mut self) -> Result<Value, LvmError> {
        let line = self.line;
        self.bump();
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => {
                    return Err(LvmError::Syntax {
                        line,
                        what: "string not closed".into(),
                    })
                }
                Some(b'"') => return Ok(Value::Str(String::from_utf8_lossy(&out).into_owned())),
                Some(b'\\') => match self.bump() {
                    Some(c) => out.push(c),
                    None => {
                        return Err(LvmError::Syntax {
                            line,
                            what: "string not closed".into(),
                        })
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn number(&mut self) -> Result<Value, LvmError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.bump();
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit() || c == b'.') {
            self.bump();
        }
        if self.peek().is_some_and(is_name_char) {
            return Err(self.error(format!("a number expected, found {}", shown(self.peek()))));
        }
        let word =
            std::str::from_utf8(self.s.get(start..self.i).unwrap_or_default()).unwrap_or_default();
        let parsed = if word.contains('.') {
            word.parse::<f64>().ok().map(Value::Float)
        } else {
            word.parse::<i64>().ok().map(Value::Int)
        };
        parsed.ok_or_else(|| self.error(format!("`{word}` is not a number LVM writes (64-bit)")))
    }
}

fn is_name_char(c: u8) -> bool {
    !c.is_ascii_whitespace() && !b"{}[]=,\"#".contains(&c)
}

fn shown(c: Option<u8>) -> String {
    match c {
        None => "the end of the text".into(),
        Some(c) if c.is_ascii_graphic() => format!("`{}`", char::from(c)),
        Some(c) => format!("byte {c:#04x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax_line(text: &str) -> usize {
        match parse(text) {
            Err(LvmError::Syntax { line, .. }) => line,
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    #[test]
    fn config_parses_sections_values_arrays_and_comments() {
        let text = "# a comment\nvg {\n\tid = \"a-b\"\t# trailing\n\tseqno = 3\n\
                    ratio = 1.5\n\tneg = -2\n\tstatus = [\"READ\", \"WRITE\"]\n\
                    empty = []\n\tstripes = [\n\"pv0\", 0,\n\"pv1\", 8\n]\n\tinner { x = 1 }\n}\n\
                    contents = \"Text Format Volume Group\"\n";
        let top = parse(text).expect("parses");
        assert_eq!(top.entries.len(), 2);
        let Node::Section(vg) = &top.entries[0].node else {
            panic!("vg is a section")
        };
        let get = |n: &str| match &vg.all(n).next().expect(n).node {
            Node::Value(v) => v.clone(),
            Node::Section(_) => panic!("{n} is a value"),
        };
        assert_eq!(get("id"), Value::Str("a-b".into()));
        assert_eq!(get("seqno"), Value::Int(3));
        assert_eq!(get("ratio"), Value::Float(1.5));
        assert_eq!(get("neg"), Value::Int(-2));
        assert_eq!(
            get("status"),
            Value::Array(vec![Value::Str("READ".into()), Value::Str("WRITE".into())])
        );
        assert_eq!(get("empty"), Value::Array(vec![]));
        assert_eq!(
            get("stripes"),
            Value::Array(vec![
                Value::Str("pv0".into()),
                Value::Int(0),
                Value::Str("pv1".into()),
                Value::Int(8)
            ])
        );
        assert_eq!(vg.all("inner").next().map(|e| e.line), Some(13));
        assert_eq!(top.entries[1].line, 15);
    }

    #[test]
    fn config_string_escapes_and_hashes_inside_strings() {
        let top = parse(r#"d = "say \"hi\" \\ # not a comment""#).expect("parses");
        assert_eq!(
            top.entries[0].node,
            Node::Value(Value::Str(r#"say "hi" \ # not a comment"#.into()))
        );
    }

    #[test]
    fn config_faults_name_their_line() {
        assert_eq!(syntax_line("a = 1\nb = \"open\n\n"), 2);
        assert_eq!(syntax_line("a {\n b = 1\n"), 1);
        assert_eq!(syntax_line("a = 1\n}\n"), 2);
        assert_eq!(syntax_line("a = 1\n\nb = [1 2]"), 3);
        assert_eq!(syntax_line("a = 99999999999999999999"), 1);
        assert_eq!(syntax_line("a = 12abc"), 1);
        assert_eq!(syntax_line("a = [[1]]"), 1);
        assert_eq!(syntax_line("= 1"), 1);
        assert_eq!(syntax_line("a 1"), 1);
        assert_eq!(syntax_line("a = bare"), 1);
        assert_eq!(syntax_line("\u{1}\u{2}\u{3} ~~~ {{{ ]]]"), 1);
    }

    #[test]
    fn config_nesting_is_bounded() {
        let deep = "a {".repeat(MAX_DEPTH + 1) + &"}".repeat(MAX_DEPTH + 1);
        assert!(matches!(parse(&deep), Err(LvmError::Syntax { .. })));
        let ok = "a {".repeat(MAX_DEPTH) + &"}".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
    }
}
