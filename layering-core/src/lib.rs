//! `layering-core`: closure + optional hints + budget → ordered layers.
//!
//! Pure and deterministic: no I/O, no clocks, no hash-map iteration order in the output. The
//! result is a bottom-up list of [`Layer`]s, each a list of store paths plus the [`Reason`] it
//! exists, in the shape nixpkgs' `store_layers` and nix2container's layers file take.
//!
//! Strategies:
//! - [`Strategy::Popularity`]: nixpkgs `referencesByPopularity` + `limit_layers`, exactly
//!   ([`popularity`]).
//! - [`Strategy::SizeFirst`]: nixpkgs `auto-layer.py`, exactly ([`size_first`]).
//! - [`Strategy::Hints`]: ours, from a hint file ([`hinted`]).
//!
//! Invariants, for every strategy (checked in `tests/invariants.rs`): each path is in exactly one
//! layer, no layer is empty, the layer count is within the budget, total bytes are preserved, and
//! the output does not depend on the order of the input records or references.
//!
//! Boundary: input formats, databases and the CLI live in the `hints` crate (`analyzer/`).

#![warn(missing_docs)]

pub mod closure;
pub mod hinted;
pub mod popularity;
pub mod records;
pub mod size_first;
pub mod texts;

use std::fmt;

pub use closure::{Closure, ClosureError, Direction};
use hints_format::{HintFile, MatchError, PinRule, StorePath};
pub use records::{PathInfo, PathRecord, Records};
pub use texts::Texts;

/// How many layers the image may have, and how many are kept for non-store content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Layers in the image, store and non-store.
    pub max_layers: usize,
    /// Layers reserved for a customisation layer or a base image (nixpkgs reserves 1).
    pub reserve: usize,
}

impl Budget {
    /// A budget; the reserve must leave at least one layer for the store.
    pub fn new(max_layers: usize, reserve: usize) -> Result<Self, LayerError> {
        if !hints_format::BudgetHeader::leaves_store_layers(max_layers as u64, reserve as u64) {
            return Err(LayerError::Budget { max_layers, reserve });
        }
        Ok(Budget { max_layers, reserve })
    }

    /// Layers available to store paths.
    pub fn store_layers(&self) -> usize {
        self.max_layers - self.reserve
    }
}

impl Default for Budget {
    /// nixpkgs' defaults: 100 layers, one reserved.
    fn default() -> Self {
        Budget { max_layers: 100, reserve: 1 }
    }
}

/// How a closure is split into layers.
#[derive(Debug, Clone, Copy)]
pub enum Strategy<'a> {
    /// nixpkgs `referencesByPopularity` ([`popularity`]).
    Popularity,
    /// nixpkgs `auto-layer.py` ([`size_first`]).
    SizeFirst,
    /// A hint file ([`hinted`]).
    Hints(&'a HintFile),
}

impl<'a> Strategy<'a> {
    /// What a hint file does for `image`: size-first where the file lists the image in
    /// `size_first_images`, its groups otherwise (and when the image is not named).
    pub fn hints_for(file: &'a HintFile, image: Option<&str>) -> Strategy<'a> {
        match image {
            Some(image) if file.lays_out_by_size_first(image) => Strategy::SizeFirst,
            _ => Strategy::Hints(file),
        }
    }
}

/// Why a closure could not be layered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    /// The reserve leaves no layer for the store.
    #[error("budget: reserve ({reserve}) must be smaller than max-layers ({max_layers})")]
    Budget {
        /// Layers in the image.
        max_layers: usize,
        /// Layers kept for non-store content.
        reserve: usize,
    },
    /// `referencesByPopularity` counts routes through the graph; at this path the count no
    /// longer fits in 128 bits.
    #[error("popularity count overflowed 128 bits at `{0}`: the graph has too many routes for referencesByPopularity")]
    PopularityOverflow(String),
    /// The hint file's patterns could not be matched.
    #[error(transparent)]
    Match(#[from] MatchError),
}

/// Why a layer exists, for `--explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `popularity`: the path ranked `rank` (1 = most popular).
    Popular {
        /// 1 = most popular.
        rank: usize,
    },
    /// `popularity`: everything after the single-path layers.
    PopularRemainder,
    /// `size-first`: the paths whose set of large "primary" users is `used_by`.
    SizeFirst {
        /// The primaries (store paths) that need these paths.
        used_by: Vec<String>,
    },
    /// `hints`: a hint group.
    Group {
        /// The group's id in the hint file.
        id: String,
    },
    /// `hints`: a pin.
    Pin {
        /// The pin's id in the hint file.
        id: String,
        /// What the pin does.
        rule: PinRule,
    },
    /// `hints`: paths no hint covers, split size-first among themselves.
    Fallback {
        /// The primaries (store paths) that need these paths.
        used_by: Vec<String>,
    },
    /// `hints`: layers merged to fit the budget (any pair, the least expected waste first).
    Merged(Vec<Reason>),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |v: &[String]| v.iter().map(|p| StorePath::parse(p).map(|s| s.name().to_string()).unwrap_or(p.clone())).collect::<Vec<_>>().join(", ");
        match self {
            Reason::Popular { rank } => write!(f, "popularity rank {rank}"),
            Reason::PopularRemainder => write!(f, "popularity remainder (everything past the single-path layers)"),
            Reason::SizeFirst { used_by } if used_by.is_empty() => write!(f, "size-first: used by no large path"),
            Reason::SizeFirst { used_by } => write!(f, "size-first: needed by exactly {{{}}}", names(used_by)),
            Reason::Group { id } => write!(f, "hint group `{id}`"),
            Reason::Pin { id, rule } => write!(f, "pin `{id}` ({})", rule.as_str()),
            Reason::Fallback { used_by } if used_by.is_empty() => write!(f, "fallback: not in the hint file"),
            Reason::Fallback { used_by } => {
                write!(f, "fallback: not in the hint file, size-first around {{{}}}", names(used_by))
            }
            Reason::Merged(parts) => {
                write!(f, "merged to fit the budget: ")?;
                for (k, p) in parts.iter().enumerate() {
                    write!(f, "{}{p}", if k > 0 { " + " } else { "" })?;
                }
                Ok(())
            }
        }
    }
}

/// One layer: store paths and why they are together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The layer's store paths.
    pub paths: Vec<StorePath>,
    /// Sum of the members' narSize.
    pub size: u64,
    /// Why these paths are together.
    pub reason: Reason,
}

impl Layer {
    /// A layer of closure nodes, in the given order.
    pub fn new(closure: &Closure, nodes: Vec<usize>, reason: Reason) -> Self {
        Layer { size: nodes.iter().map(|&i| closure.nar_size(i)).sum(), paths: nodes.into_iter().map(|i| closure.path(i).clone()).collect(), reason }
    }
}

/// Splits a closure into at most `budget.store_layers()` layers, bottom-up.
pub fn layer(closure: &Closure, budget: Budget, strategy: Strategy<'_>) -> Result<Vec<Layer>, LayerError> {
    let n = budget.store_layers();
    match strategy {
        Strategy::Popularity => popularity::layers(closure, n),
        Strategy::SizeFirst => Ok(size_first::layers(closure, n)),
        Strategy::Hints(file) => hinted::layers(closure, n, file),
    }
}

/// Lays out `image` (when named) with a hint file, as the file says for it: as size-first where
/// it lists the image in `size_first_images`, otherwise with its groups, less those the image
/// opts out of ([`HintFile::for_image`]).
pub fn layer_image(closure: &Closure, budget: Budget, file: &HintFile, image: Option<&str>) -> Result<Vec<Layer>, LayerError> {
    layer(closure, budget, Strategy::hints_for(&file.for_image(image), image))
}

/// The `store_layers` form: a list of lists of store paths.
pub fn store_layers(layers: &[Layer]) -> Vec<Vec<String>> {
    layers.iter().map(|l| l.paths.iter().map(|p| p.to_string()).collect()).collect()
}
