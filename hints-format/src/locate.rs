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
    Key(String),
    Index(usize),
}

impl Seg {
    pub fn key(k: &str) -> Self {
        Seg::Key(k.to_string())
    }
}

/// Maps node paths to 1-based (line, column).
#[derive(Debug, Default)]
pub struct Locator {
    at: HashMap<Vec<Seg>, (usize, usize)>,
}

enum Frame {
    Map { path: Vec<Seg>, key: Option<String> },
    Seq { path: Vec<Seg>, next: usize },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    at: HashMap<Vec<Seg>, (usize, usize)>,
}

impl Recorder {
    /// The path of the node that starts now, or `None` when it is a mapping key.
    fn node_path(&mut self, scalar: Option<&str>, pos: (usize, usize)) -> Option<Vec<Seg>> {
        match self.stack.last_mut() {
            None => Some(vec![]),
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => {
                    let mut p = path.clone();
                    p.push(Seg::Key(k));
                    Some(p)
                }
                None => {
                    // A mapping key: remember it (complex keys are recorded as empty). A block
                    // mapping starts where its first key does.
                    *key = Some(scalar.unwrap_or_default().to_string());
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
                self.stack.push(if is_map { Frame::Map { path, key: None } } else { Frame::Seq { path, next: 0 } });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl Locator {
    /// Records node positions; text that is not valid YAML gives an empty locator.
    pub fn new(text: &str) -> Self {
        let mut rec = Recorder::default();
        let _ = Parser::new_from_str(text).load(&mut rec, false);
        Locator { at: rec.at }
    }

    /// The position of the node at `path`, or of its nearest recorded ancestor.
    pub fn at(&self, path: &[Seg]) -> (usize, usize) {
        (0..=path.len()).rev().find_map(|n| self.at.get(&path[..n]).copied()).unwrap_or((1, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
