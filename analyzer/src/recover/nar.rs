//! A store path's file tree and its NAR serialisation: `narSize` and `narHash` exactly as Nix
//! computes them (`nix-store --dump`), without writing the NAR anywhere.
//!
//! NAR: the string `nix-archive-1`, then the root node. Every string is its length (u64, little
//! endian) and its bytes, zero-padded to a multiple of 8. A node is `(` `type` then
//! - `regular`, then `executable` and the empty string for an executable, then `contents` BYTES, or
//! - `symlink` `target` TARGET, or
//! - `directory`, then for each entry in byte order of names: `entry` `(` `name` NAME `node`
//!   NODE `)`;
//!
//! and `)`.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// A file tree as a layer holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file.
    File {
        /// Any execute bit set.
        executable: bool,
        /// Its bytes.
        contents: Vec<u8>,
    },
    /// A symbolic link.
    Symlink {
        /// Where it points (bytes, as stored).
        target: Vec<u8>,
    },
    /// A directory; entries by name (byte order, as NAR sorts them).
    Directory(BTreeMap<Vec<u8>, Node>),
}

/// Where a NAR goes: hashed and counted.
pub(super) struct Nar {
    sha: Sha256,
    size: u64,
}

impl Nar {
    pub(super) fn new() -> Self {
        Nar { sha: Sha256::new(), size: 0 }
    }

    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.sha.update(b);
        self.size += b.len() as u64;
    }

    /// A string: its length, its bytes, zeros to a multiple of 8.
    pub(super) fn str(&mut self, s: &[u8]) {
        self.bytes(&(s.len() as u64).to_le_bytes());
        self.bytes(s);
        self.pad(s.len() as u64);
    }

    /// The zeros after a string of `len` bytes.
    pub(super) fn pad(&mut self, len: u64) {
        let pad = ((8 - len % 8) % 8) as usize;
        self.bytes(&[0u8; 8][..pad]);
    }

    /// The size and SHA-256 of what was written.
    pub(super) fn finish(self) -> (u64, [u8; 32]) {
        (self.size, self.sha.finalize().into())
    }

    fn node(&mut self, n: &Node) {
        self.str(b"(");
        self.str(b"type");
        match n {
            Node::File { executable, contents } => {
                self.str(b"regular");
                if *executable {
                    self.str(b"executable");
                    self.str(b"");
                }
                self.str(b"contents");
                self.str(contents);
            }
            Node::Symlink { target } => {
                self.str(b"symlink");
                self.str(b"target");
                self.str(target);
            }
            Node::Directory(entries) => {
                self.str(b"directory");
                for (name, child) in entries {
                    self.str(b"entry");
                    self.str(b"(");
                    self.str(b"name");
                    self.str(name);
                    self.str(b"node");
                    self.node(child);
                    self.str(b")");
                }
            }
        }
        self.str(b")");
    }
}

/// The NAR's size and SHA-256.
pub fn nar_size_and_hash(root: &Node) -> (u64, [u8; 32]) {
    let mut nar = Nar::new();
    nar.str(b"nix-archive-1");
    nar.node(root);
    nar.finish()
}

impl Node {
    /// Every byte string the tree holds that Nix scans for references: file contents and
    /// symlink targets.
    pub fn for_each_scanned(&self, f: &mut impl FnMut(&[u8])) {
        match self {
            Node::File { contents, .. } => f(contents),
            Node::Symlink { target } => f(target),
            Node::Directory(entries) => entries.values().for_each(|c| c.for_each_scanned(f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nix-store --dump` of a one-file store path holding `hello\n` is 120 bytes: the header
    /// (8 + 16), `(`, `type`, `regular`, `contents`, the 6 bytes padded to 8, `)`.
    #[test]
    fn a_single_file_is_what_nix_dumps() {
        let (size, _) = nar_size_and_hash(&Node::File { executable: false, contents: b"hello\n".to_vec() });
        assert_eq!(size, 24 + 16 + 16 + 16 + 16 + 8 + 8 + 16);
        let (exec, _) = nar_size_and_hash(&Node::File { executable: true, contents: b"hello\n".to_vec() });
        assert_eq!(exec, size + 24 + 8, "`executable` and the empty string");
    }

    #[test]
    fn entries_serialise_in_name_order_whatever_the_insertion_order() {
        let file = |c: &[u8]| Node::File { executable: false, contents: c.to_vec() };
        let a: BTreeMap<Vec<u8>, Node> = [(b"b".to_vec(), file(b"2")), (b"a".to_vec(), file(b"1"))].into_iter().collect();
        let b: BTreeMap<Vec<u8>, Node> = [(b"a".to_vec(), file(b"1")), (b"b".to_vec(), file(b"2"))].into_iter().collect();
        assert_eq!(nar_size_and_hash(&Node::Directory(a)), nar_size_and_hash(&Node::Directory(b)));
    }
}
