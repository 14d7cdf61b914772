//! One store path's NAR hash, size and reference windows, computed as its tar entries stream by,
//! holding none of its files.
//!
//! # Objective
//! Recovering a closure must not need memory in proportion to a layer: a layer of one 5 GB
//! path must be read with the memory of a read buffer. Nix serialises a directory's entries in
//! byte order of their names, depth first; a layer written in that order (`hints image`,
//! dockerTools, `tar --sort=name`) can be hashed as it is read.
//!
//! # Definitions
//! - A path's *cursor* is the chain of directories open in its NAR, each with the name of the
//!   last entry written into it.
//! - An entry is *in order* when, after closing the directories that are not its ancestors and
//!   opening the ancestors not yet open (a tar may omit directory entries), its name sorts
//!   strictly after the last name written into its parent. A directory entry for a directory
//!   that is open (some writers put it after its children) is already written.
//!
//! # Algorithm
//! Each entry of the path writes its NAR tokens into SHA-256 and a byte counter as it comes
//! ([`super::nar`] has the format); a file's length is known from its tar header before its
//! bytes, which stream through in chunks. File contents and symlink targets go through a
//! [`Scanner`], which finds the same 32-digit windows as [`super::refs::windows`] on the whole
//! bytes. An entry out of order (or a hard link, whose target's bytes are gone) ends the
//! stream with [`OutOfOrder`]: the caller then reads that path again, whole ([`super::nar`]).

use std::collections::HashSet;

use hints_format::nixbase32;

use super::nar::Nar;
use super::refs::{windows, HASH_LEN};
use super::{sri, Recovered};

/// The path's entries do not come in NAR order (or include a hard link): it must be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfOrder;

/// What a store path's root turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    None,
    Directory,
    /// A file or symlink: the path is complete.
    Leaf,
}

/// An open directory: its name and the name of the last entry written into it.
struct Level {
    name: Vec<u8>,
    last: Option<Vec<u8>>,
}

/// One store path's NAR, written as its entries come.
pub struct PathStream {
    nar: Nar,
    root: Root,
    /// Open directories below the root (`open[0]` is the root itself when it is a directory).
    open: Vec<Level>,
    scanner: Scanner,
    windows: HashSet<[u8; HASH_LEN]>,
    /// Bytes of the open file still to come.
    pending: u64,
}

impl Default for PathStream {
    fn default() -> Self {
        let mut nar = Nar::new();
        nar.str(b"nix-archive-1");
        PathStream { nar, root: Root::None, open: vec![], scanner: Scanner::default(), windows: HashSet::new(), pending: 0 }
    }
}

impl PathStream {
    /// A directory at `at` (store-path-relative components; empty: the path itself).
    pub fn directory(&mut self, at: &[&[u8]]) -> Result<(), OutOfOrder> {
        if self.is_open(at) {
            return Ok(());
        }
        self.enter(at)?;
        self.open_directory(at.last().map_or(&[][..], |n| n));
        Ok(())
    }

    /// A symlink at `at` to `target`.
    pub fn symlink(&mut self, at: &[&[u8]], target: &[u8]) -> Result<(), OutOfOrder> {
        self.enter(at)?;
        self.nar.str(b"(");
        self.nar.str(b"type");
        self.nar.str(b"symlink");
        self.nar.str(b"target");
        self.nar.str(target);
        self.nar.str(b")");
        self.scanner.start();
        self.scanner.feed(target, &mut self.windows);
        self.close_leaf(at);
        Ok(())
    }

    /// A regular file at `at` of `size` bytes; its bytes follow through [`PathStream::contents`],
    /// then [`PathStream::end_file`].
    pub fn file(&mut self, at: &[&[u8]], executable: bool, size: u64) -> Result<(), OutOfOrder> {
        self.enter(at)?;
        self.nar.str(b"(");
        self.nar.str(b"type");
        self.nar.str(b"regular");
        if executable {
            self.nar.str(b"executable");
            self.nar.str(b"");
        }
        self.nar.str(b"contents");
        self.nar.bytes(&size.to_le_bytes());
        self.pending = size;
        self.scanner.start();
        Ok(())
    }

    /// Some bytes of the open file.
    pub fn contents(&mut self, chunk: &[u8]) {
        self.nar.bytes(chunk);
        self.pending = self.pending.saturating_sub(chunk.len() as u64);
        self.scanner.feed(chunk, &mut self.windows);
    }

    /// The open file's end (its tar entry was read to the end).
    pub fn end_file(&mut self, at: &[&[u8]], size: u64) {
        debug_assert_eq!(self.pending, 0, "the tar entry gave every byte its header promised");
        self.nar.pad(size);
        self.nar.str(b")");
        self.close_leaf(at);
    }

    /// Closes every open directory; the path's size, hash and windows.
    pub fn finish(mut self) -> Recovered {
        while self.open.pop().is_some() {
            self.nar.str(b")");
            // A directory below the root also closes its entry.
            if !self.open.is_empty() {
                self.nar.str(b")");
            }
        }
        let (nar_size, sha) = self.nar.finish();
        Recovered { nar_size, nar_hash: sri(sha), windows: self.windows }
    }

    fn is_open(&self, at: &[&[u8]]) -> bool {
        self.root == Root::Directory && at.len() < self.open.len() && self.open[1..=at.len()].iter().zip(at).all(|(l, c)| l.name == *c)
    }

    /// Positions the cursor to write the entry `at`: closes what is not its ancestor, opens
    /// its ancestors, and writes `entry ( name NAME node` in its parent.
    fn enter(&mut self, at: &[&[u8]]) -> Result<(), OutOfOrder> {
        let Some((name, parent)) = at.split_last() else {
            return match self.root {
                Root::None => Ok(()),
                _ => Err(OutOfOrder),
            };
        };
        match self.root {
            Root::Leaf => return Err(OutOfOrder),
            Root::None => self.open_directory(b""),
            Root::Directory => {}
        }
        let common = self.open[1..].iter().zip(parent).take_while(|(l, c)| l.name == **c).count();
        while self.open.len() > common + 1 {
            self.open.pop();
            self.nar.str(b")");
            self.nar.str(b")");
        }
        for dir in &parent[common..] {
            self.write_entry_head(dir)?;
            self.open_directory(dir);
        }
        self.write_entry_head(name)
    }

    fn write_entry_head(&mut self, name: &[u8]) -> Result<(), OutOfOrder> {
        let parent = self.open.last_mut().expect("the root directory is open");
        if parent.last.as_deref().is_some_and(|last| last >= name) {
            return Err(OutOfOrder);
        }
        parent.last = Some(name.to_vec());
        self.nar.str(b"entry");
        self.nar.str(b"(");
        self.nar.str(b"name");
        self.nar.str(name);
        self.nar.str(b"node");
        Ok(())
    }

    fn open_directory(&mut self, name: &[u8]) {
        if self.root == Root::None {
            self.root = Root::Directory;
        }
        self.nar.str(b"(");
        self.nar.str(b"type");
        self.nar.str(b"directory");
        self.open.push(Level { name: name.to_vec(), last: None });
    }

    /// After a file or symlink: closes its entry, or marks the path complete when it is the root.
    fn close_leaf(&mut self, at: &[&[u8]]) {
        if at.is_empty() {
            self.root = Root::Leaf;
        } else {
            self.nar.str(b")");
        }
    }
}

/// Nix's reference scan over bytes that come in chunks: a window of 32 Nix base32 digits may
/// span chunks.
#[derive(Default)]
pub struct Scanner {
    /// The digits that end the bytes so far (at most 31): the start of a window that may end in
    /// the next chunk.
    tail: Vec<u8>,
}

impl Scanner {
    /// A new file or symlink target: no run carries over.
    pub fn start(&mut self) {
        self.tail.clear();
    }

    /// Adds to `found` every window that ends in `chunk`.
    pub fn feed(&mut self, chunk: &[u8], found: &mut HashSet<[u8; HASH_LEN]>) {
        if !self.tail.is_empty() {
            // The windows that start in the tail: every one of them is within the tail and
            // the chunk's first 31 bytes.
            let mut joined = [0u8; 2 * (HASH_LEN - 1)];
            let head = &chunk[..chunk.len().min(HASH_LEN - 1)];
            joined[..self.tail.len()].copy_from_slice(&self.tail);
            joined[self.tail.len()..self.tail.len() + head.len()].copy_from_slice(head);
            windows(&joined[..self.tail.len() + head.len()], found);
        }
        windows(chunk, found);
        let digits_at_end = chunk.iter().rev().take(HASH_LEN - 1).take_while(|&&b| nixbase32::is_digit(b)).count();
        if digits_at_end < chunk.len() {
            self.tail.clear();
        }
        self.tail.extend_from_slice(&chunk[chunk.len() - digits_at_end..]);
        let over = self.tail.len().saturating_sub(HASH_LEN - 1);
        self.tail.drain(..over);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::recover::nar::{nar_size_and_hash, Node};

    /// Streams `tree` as a sorted tar would give it (directories before their children).
    fn streamed(tree: &Node, chunk: usize) -> (u64, String, HashSet<[u8; 32]>) {
        fn walk(s: &mut PathStream, at: &mut Vec<Vec<u8>>, n: &Node, chunk: usize) {
            let path: Vec<&[u8]> = at.iter().map(Vec::as_slice).collect();
            match n {
                Node::File { executable, contents } => {
                    s.file(&path, *executable, contents.len() as u64).unwrap();
                    contents.chunks(chunk).for_each(|c| s.contents(c));
                    s.end_file(&path, contents.len() as u64);
                }
                Node::Symlink { target } => s.symlink(&path, target).unwrap(),
                Node::Directory(entries) => {
                    s.directory(&path).unwrap();
                    for (name, child) in entries {
                        at.push(name.clone());
                        walk(s, at, child, chunk);
                        at.pop();
                    }
                }
            }
        }
        let mut s = PathStream::default();
        walk(&mut s, &mut vec![], tree, chunk);
        let r = s.finish();
        (r.nar_size, r.nar_hash, r.windows)
    }

    fn whole(tree: &Node) -> (u64, String, HashSet<[u8; 32]>) {
        let (size, hash) = nar_size_and_hash(tree);
        let mut found = HashSet::new();
        tree.for_each_scanned(&mut |b| windows(b, &mut found));
        (size, sri(hash), found)
    }

    fn tree() -> impl Strategy<Value = Node> {
        let leaf = prop_oneof![
            (any::<bool>(), proptest::collection::vec(prop_oneof![16 => Just(b'a'), 16 => Just(b'0'), 1 => Just(b'-'), 1 => any::<u8>()], 0..120))
                .prop_map(|(executable, contents)| Node::File { executable, contents }),
            proptest::collection::vec(prop_oneof![Just(b'z'), Just(b'/')], 0..40).prop_map(|target| Node::Symlink { target }),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| proptest::collection::btree_map(proptest::collection::vec(b'a'..b'e', 1..3), inner, 0..4).prop_map(Node::Directory))
    }

    proptest! {
        #[test]
        fn a_sorted_stream_hashes_and_scans_as_the_whole_tree(t in tree(), chunk in 1usize..40) {
            prop_assert_eq!(streamed(&t, chunk), whole(&t));
        }
    }

    #[test]
    fn a_window_across_chunks_is_found_once_it_ends() {
        let digits = b"0123456789abcdfghijklmnpqrsvwxyz0";
        let mut found = HashSet::new();
        let mut s = Scanner::default();
        for c in digits.chunks(5) {
            s.feed(c, &mut found);
        }
        assert_eq!(found.len(), 2, "two 32-digit windows in 33 digits");
    }

    #[test]
    fn entries_out_of_order_or_twice_end_the_stream() {
        let mut s = PathStream::default();
        s.directory(&[]).unwrap();
        s.symlink(&[b"b"], b"x").unwrap();
        assert_eq!(s.symlink(&[b"a"], b"x"), Err(OutOfOrder), "a after b");
        let mut s = PathStream::default();
        s.symlink(&[b"d", b"x"], b"t").unwrap();
        s.directory(&[b"d"]).expect("a directory entry after its children");
        s.symlink(&[b"e"], b"t").unwrap();
        assert_eq!(s.symlink(&[b"d", b"y"], b"t"), Err(OutOfOrder), "back into a closed directory");
        let mut s = PathStream::default();
        s.symlink(&[], b"t").unwrap();
        assert_eq!(s.directory(&[]), Err(OutOfOrder), "the path is a symlink");
    }
}
