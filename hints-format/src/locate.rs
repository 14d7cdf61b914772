//! Positions of YAML nodes, for errors that serde cannot place.
//!
//! serde reports where syntax and type errors are, but checks made after deserialising (a
//! duplicate id, a repeated member) only know the *path* of the offending node, e.g.
//! `groups[3].id`. [`Locator`] walks the same text with yaml-rust2's event parser once and
//! records the line and column where every node starts, keyed by that path.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index (0-based).
    Index(usize),
}

impl Seg {
    /// A key step.
    pub fn key(k: &str) -> Self {
        Seg::Key(k.to_string())
    }
}

/// Deepest nesting of collections a hint file may have (a valid one needs 5).
pub const MAX_NESTING: usize = 32;

/// Maps node paths to 1-based (line, column).
#[derive(Debug, Default)]
pub struct Locator {
    at: HashMap<Vec<Seg>, (usize, usize)>,
    /// Where the nesting first went deeper than [`MAX_NESTING`]; nothing after it is read.
    pub too_deep: Option<(usize, usize)>,
    /// Where a mapping first repeats a key (the repeat, not the mapping).
    pub duplicate_key: Option<(usize, usize)>,
}

enum Frame {
    Map { path: Vec<Seg>, key: Option<String>, seen: std::collections::HashSet<String> },
    Seq { path: Vec<Seg>, next: usize },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    at: HashMap<Vec<Seg>, (usize, usize)>,
    /// Where a key first repeats within its mapping.
    duplicate_key: Option<(usize, usize)>,
}

impl Recorder {
    /// The path of the node that starts now, or `None` when it is a mapping key.
    fn node_path(&mut self, scalar: Option<&str>, pos: (usize, usize)) -> Option<Vec<Seg>> {
        match self.stack.last_mut() {
            None => Some(vec![]),
            Some(Frame::Map { path, key, seen }) => match key.take() {
                Some(k) => {
                    let mut p = path.clone();
                    p.push(Seg::Key(k));
                    Some(p)
                }
                None => {
                    // A mapping key: remember it (complex keys are recorded as empty). A block
                    // mapping starts where its first key does.
                    let name = scalar.unwrap_or_default().to_string();
                    if !seen.insert(name.clone()) && scalar.is_some() {
                        self.duplicate_key.get_or_insert(pos);
                    }
                    *key = Some(name);
                    self.at.entry(path.clone()).or_insert(pos);
                    None
                }
            },
            Some(Frame::Seq { path, next }) => {
                let mut p = path.clone();
                p.push(Seg::Index(*next));
                *next += 1;
                Some(p)
            }
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = (mark.line().max(1), mark.col() + 1);
        match ev {
            Event::Scalar(ref v, ..) => {
                if let Some(p) = self.node_path(Some(v), pos) {
                    self.at.insert(p, pos);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.node_path(Some(""), pos) {
                    self.at.insert(p, pos);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                // A collection used as a mapping key gets an empty key name.
                let path = self.node_path(None, pos).unwrap_or_default();
                if !is_map {
                    self.at.insert(path.clone(), pos);
                }
                self.stack.push(if is_map { Frame::Map { path, key: None, seen: Default::default() } } else { Frame::Seq { path, next: 0 } });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// Whether flow collections nest deeper than [`MAX_NESTING`] anywhere in `text`: checked before
/// any YAML parser sees it.
pub fn has_deep_flow(text: &str) -> bool {
    deep_flow(text).is_some()
}

/// Where flow collections (`[`, `{` opening a node) first nest deeper than [`MAX_NESTING`], in
/// one pass over the text that skips quoted scalars and comments.
fn deep_flow(text: &str) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut col) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let (mut prev, mut comment, mut escaped) = ('\n', false, false);
    for c in text.chars() {
        col += 1;
        if c == '\n' {
            (line, col, comment) = (line + 1, 0, false);
        } else if comment {
        } else if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if q == '"' && c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                '"' | '\'' if matches!(prev, ' ' | '\t' | '\n' | '[' | '{' | ',' | ':' | '-') => quote = Some(c),
                '#' if matches!(prev, ' ' | '\t' | '\n') => comment = true,
                '[' | '{' if matches!(prev, ' ' | '\t' | '\n' | '[' | '{' | ',') => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Some((line, col));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        prev = c;
    }
    None
}

impl Locator {
    /// Records node positions, up to the first syntax error or the first collection nested
    /// deeper than [`MAX_NESTING`] (so neither time nor memory grows with hostile depth).
    pub fn new(text: &str) -> Self {
        // YAML scanners keep a candidate key per open flow collection and revisit them all at
        // every token, so thousands of `[` take minutes: count them before any parser runs.
        if let Some(at) = deep_flow(text) {
            return Locator { at: HashMap::new(), too_deep: Some(at), duplicate_key: None };
        }
        let mut rec = Recorder::default();
        let mut parser = Parser::new_from_str(text);
        while let Ok((ev, mark)) = parser.next_token() {
            if matches!(ev, Event::StreamEnd) {
                break;
            }
            rec.on_event(ev, mark);
            if rec.stack.len() > MAX_NESTING {
                return Locator { at: rec.at, too_deep: Some((mark.line().max(1), mark.col() + 1)), duplicate_key: rec.duplicate_key };
            }
        }
        Locator { at: rec.at, too_deep: None, duplicate_key: rec.duplicate_key }
    }

    /// The position of the node at `path`, or of its nearest recorded ancestor.
    pub fn at(&self, path: &[Seg]) -> (usize, usize) {
        (0..=path.len()).rev().find_map(|n| self.at.get(&path[..n]).copied()).unwrap_or((1, 1))
    }
}

/// A serde error message (serde_json, serde_yaml_ng) without the " at line L column C" they
/// append: callers print the position their own way.
pub fn without_serde_position(msg: &str) -> &str {
    msg.find(" at line ").map_or(msg, |i| &msg[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_nesting_stops_the_walk() {
        let deep = format!("{}x\n", "- ".repeat(100_000));
        let l = Locator::new(&deep);
        assert_eq!(l.too_deep, Some((1, 2 * MAX_NESTING + 1)));
        assert!(Locator::new("a:\n  b: [1, [2]]\n").too_deep.is_none());
        let flow = format!("a: {}1\n", "[".repeat(400_000));
        assert_eq!(Locator::new(&flow).too_deep, Some((1, 4 + MAX_NESTING)));
        let quoted = format!("a: \"{}\"\nb: '{}'\nc: x[0-9] # {}\n", "[".repeat(100), "{".repeat(100), "[".repeat(100));
        assert!(Locator::new(&quoted).too_deep.is_none());
    }

    #[test]
    fn finds_nested_nodes() {
        let text = "a: 1\nlist:\n  - id: x\n    members: [p, q]\n  - id: y\n";
        let l = Locator::new(text);
        assert_eq!(l.at(&[Seg::key("a")]), (1, 4));
        assert_eq!(l.at(&[Seg::key("list"), Seg::Index(1), Seg::key("id")]), (5, 9));
        assert_eq!(l.at(&[Seg::key("list"), Seg::Index(0), Seg::key("members"), Seg::Index(1)]), (4, 18));
        // Missing leaf: nearest ancestor.
        assert_eq!(l.at(&[Seg::key("list"), Seg::Index(1), Seg::key("nope")]), (5, 5));
    }
}
