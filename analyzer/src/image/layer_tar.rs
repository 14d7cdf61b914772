//! One layer as a reproducible tar stream: store paths from a real store, or a directory for
//! the image's top (customisation) layer.
//!
//! Rules, so that equal inputs give equal bytes on any machine:
//! - `nix/` and `nix/store/` come first; then each store path in path order, its tree walked
//!   depth-first with the entries of every directory sorted by their bytes;
//! - owner and group are 0 with empty names, every time is the epoch given, and nothing else of
//!   the host (device numbers, extended attributes, access times) is written;
//! - store paths take Nix's modes: directories 0555, files 0555 when executable else 0444,
//!   symlinks 0777; the top layer keeps its permission bits;
//! - a hard link is written as a plain file (each name holds its own copy of the bytes);
//! - sockets, devices and FIFOs are refused: a store never holds them.
//!
//! Long names and link targets use GNU extensions, written by the `tar` crate.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tar::{Builder, EntryType, Header};

use super::ImageError;

const READ_BUFFER: usize = 1 << 17;

/// How the entries' permission bits are chosen.
#[derive(Clone, Copy)]
enum Modes {
    /// Nix store modes (0555 / 0444 / 0777).
    Store,
    /// The source's own permission bits.
    Kept,
}

/// Writes the layer holding `paths` (absolute store paths, read under `store_root`, `/` for
/// the real store) to `w`.
pub(super) fn write_store_layer<W: Write>(w: W, paths: &[String], store_root: &Path, epoch: u64) -> Result<W, ImageError> {
    let mut b = Builder::new(w);
    for dir in ["nix/", "nix/store/"] {
        append_dir(&mut b, Path::new(dir), 0o555, epoch)?;
    }
    let mut sorted: Vec<&String> = paths.iter().collect();
    sorted.sort();
    for p in sorted {
        let relative = p.trim_start_matches('/');
        append_tree(&mut b, &store_root.join(relative), Path::new(relative), Modes::Store, epoch)?;
    }
    b.into_inner().map_err(|e| ImageError::io("finishing a layer", e))
}

/// Writes the contents of `dir` (not `dir` itself) as a layer, keeping permission bits.
pub(super) fn write_dir_layer<W: Write>(w: W, dir: &Path, epoch: u64) -> Result<W, ImageError> {
    let mut b = Builder::new(w);
    for (source, name) in sorted_children(dir, Path::new(""))? {
        append_tree(&mut b, &source, &name, Modes::Kept, epoch)?;
    }
    b.into_inner().map_err(|e| ImageError::io("finishing a layer", e))
}

fn append_tree<W: Write>(b: &mut Builder<W>, source: &Path, name: &Path, modes: Modes, epoch: u64) -> Result<(), ImageError> {
    let meta = fs::symlink_metadata(source).map_err(|e| ImageError::io(source.display(), e))?;
    let ft = meta.file_type();
    let bits = meta.permissions().mode() & 0o7777;
    if ft.is_symlink() {
        let target = fs::read_link(source).map_err(|e| ImageError::io(source.display(), e))?;
        let mut h = header(EntryType::Symlink, 0o777, epoch);
        b.append_link(&mut h, name, &target).map_err(|e| ImageError::io(source.display(), e))
    } else if ft.is_dir() {
        let mode = match modes {
            Modes::Store => 0o555,
            Modes::Kept => bits,
        };
        append_dir(b, name, mode, epoch)?;
        for (child, child_name) in sorted_children(source, name)? {
            append_tree(b, &child, &child_name, modes, epoch)?;
        }
        Ok(())
    } else if ft.is_file() {
        let mode = match modes {
            Modes::Store if bits & 0o111 != 0 => 0o555,
            Modes::Store => 0o444,
            Modes::Kept => bits,
        };
        let mut h = header(EntryType::Regular, mode, epoch);
        h.set_size(meta.len());
        let file = File::open(source).map_err(|e| ImageError::io(source.display(), e))?;
        // Large reads: `tar` copies through the reader's buffer, and 8 KiB reads cost a system
        // call each.
        let file = io::BufReader::with_capacity(READ_BUFFER, file);
        // A file that changes size while it is read would make a broken tar; the store's files
        // are immutable, and `tar` checks the length it copies.
        b.append_data(&mut h, name, file).map_err(|e| ImageError::io(source.display(), e))
    } else {
        Err(ImageError::SpecialFile(source.display().to_string()))
    }
}

fn append_dir<W: Write>(b: &mut Builder<W>, name: &Path, mode: u32, epoch: u64) -> Result<(), ImageError> {
    let mut h = header(EntryType::Directory, mode, epoch);
    h.set_size(0);
    b.append_data(&mut h, name, io::empty()).map_err(|e| ImageError::io(name.display(), e))
}

fn header(kind: EntryType, mode: u32, epoch: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(epoch);
    h.set_size(0);
    h
}

/// The entries of `dir` as (source, name in the tar), sorted by their bytes.
fn sorted_children(dir: &Path, name: &Path) -> Result<Vec<(PathBuf, PathBuf)>, ImageError> {
    let mut names: Vec<_> =
        fs::read_dir(dir).map_err(|e| ImageError::io(dir.display(), e))?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>().map_err(|e| ImageError::io(dir.display(), e))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names.into_iter().map(|n| (dir.join(&n), name.join(&n))).collect())
}
