//! `hints-format`: the hint file and the store-path names it talks about.
//!
//! - [`nixbase32`]: Nix's base32 (hashes in store paths), with a typed error.
//! - [`store_path`]: [`StorePath`], `parseDrvName` and the version-insensitive
//!   [`NameKey`] that hints match on.
//! - [`pattern`]: member patterns (`PNAME[:OUTPUT][@VERSION]`, with globs).
//! - [`file`](mod@file): the YAML hint file, strict parsing with line:column errors, canonical writer.
//! - [`matcher`]: a compiled matcher from store paths to the group or pins that cover them.
//! - [`locate`]: positions in YAML text (line:column of a key path), nesting limits, and serde
//!   messages without their own positions.
//!
//! Boundary: this crate knows nothing of closures' graphs, layering or databases.

#![warn(missing_docs)]

pub mod file;
pub mod locate;
pub mod matcher;
pub mod nixbase32;
pub mod pattern;
pub mod store_path;

pub use file::{BudgetHeader, ErrorKind, FormatError, Group, GroupStats, HintFile, LearnedFrom, Pin, PinRule, RevisionRange, Treatment, CURRENT_VERSION};
pub use matcher::{MatchError, Matcher, Placement};
pub use pattern::{MemberPattern, PatternError};
pub use store_path::{DrvName, NameKey, StorePath, StorePathError};
