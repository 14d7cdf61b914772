//! Synthetic closure histories under Nix rules, for benchmarks and tests.
//!
//! A universe of packages forms a DAG (each package depends on a few packages with smaller
//! indices, biased towards the low "base" indices, as real closures lean on libc and friends).
//! Sizes are heavy-tailed: mostly small paths and a few very large ones. Every image contains
//! the base and a random share of the rest, closed under dependencies.
//!
//! At each revision every package bumps its version with a small probability. A store path's
//! hash covers its name, version and its dependencies' hashes, so a bump renames the package and
//! everything above it, exactly as in Nix. Everything is a pure function of the seed.

use hints_format::nixbase32;
use hints_format::StorePath;
use layering_core::PathInfo;
use sha2::{Digest, Sha256};

/// Shape of a synthetic history.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub packages: usize,
    /// Packages every image contains (with their dependencies).
    pub base: usize,
    pub images: usize,
    /// Share of non-base packages each image roots.
    pub share: f64,
    /// Per-revision probability that a package bumps its version.
    pub bump: f64,
    pub seed: u64,
}

/// A splitmix64 generator: tiny, fast, and stable across platforms.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

pub struct Synth {
    shape: Shape,
    names: Vec<String>,
    sizes: Vec<u64>,
    deps: Vec<Vec<u32>>,
    /// Per image: member packages, sorted.
    members: Vec<Vec<u32>>,
    versions: Vec<u32>,
    paths: Vec<StorePath>,
    rng: Rng,
    revision: usize,
}

impl Synth {
    pub fn new(shape: Shape) -> Self {
        let mut rng = Rng::new(shape.seed);
        let n = shape.packages;
        let names = (0..n).map(|i| format!("{}{i}", ["lib", "python3.12-mod", "tool", "share-data"][i % 4])).collect();
        let sizes = (0..n)
            .map(|i| {
                let u = rng.unit();
                // Heavy tail: most paths 4 KiB–1 MiB, a few up to ~200 MiB; base paths larger.
                let base = if i < shape.base { 4.0 } else { 1.0 };
                (4096.0 * base * (1.0 / (1.0 - u * 0.9999)).powf(1.6)).min(200e6) as u64
            })
            .collect();
        // Shallow like real closures: base packages lean on a small core, others mostly on the
        // base and a little on recent neighbours.
        let core = (shape.base / 10).max(1);
        let deps = (0..n)
            .map(|i| {
                if i == 0 {
                    return vec![];
                }
                let k = 1 + rng.below(4);
                let mut d: Vec<u32> = (0..k)
                    .map(|_| {
                        let pick = if i < shape.base {
                            rng.below(core.min(i))
                        } else if rng.unit() < 0.8 {
                            rng.below(shape.base)
                        } else {
                            i - 1 - rng.below(50.min(i - shape.base).max(1))
                        };
                        pick as u32
                    })
                    .collect();
                d.sort_unstable();
                d.dedup();
                d
            })
            .collect::<Vec<Vec<u32>>>();
        let members = (0..shape.images)
            .map(|_| {
                let mut inside = vec![false; n];
                let mut stack: Vec<usize> = (0..n).filter(|&i| i < shape.base || rng.unit() < shape.share).collect();
                while let Some(i) = stack.pop() {
                    if !inside[i] {
                        inside[i] = true;
                        stack.extend(deps[i].iter().map(|&d| d as usize));
                    }
                }
                (0..n as u32).filter(|&i| inside[i as usize]).collect()
            })
            .collect();
        let mut s = Synth { shape, names, sizes, deps, members, versions: vec![1; n], paths: vec![], rng, revision: 0 };
        s.rehash();
        s
    }

    fn rehash(&mut self) {
        let mut paths: Vec<StorePath> = Vec::with_capacity(self.names.len());
        for i in 0..self.names.len() {
            // The seed stands for everything else a derivation hashes (sources, builder): two
            // seeds are two package sets, and sizes differ between them.
            let mut h = Sha256::new();
            h.update(self.shape.seed.to_le_bytes());
            h.update(self.names[i].as_bytes());
            h.update(self.versions[i].to_le_bytes());
            for &d in &self.deps[i] {
                h.update(paths[d as usize].hash().as_bytes());
            }
            let digest = h.finalize();
            let name = format!("{}-{}.{}", self.names[i], self.versions[i] / 10, self.versions[i] % 10);
            paths.push(store_path(&digest, &name));
        }
        self.paths = paths;
    }

    /// Moves to the next revision.
    pub fn advance(&mut self) {
        for v in &mut self.versions {
            if self.rng.unit() < self.shape.bump {
                *v += 1;
            }
        }
        self.revision += 1;
        self.rehash();
    }

    pub fn revision(&self) -> usize {
        self.revision
    }

    pub fn image_name(&self, image: usize) -> String {
        format!("image{image:03}")
    }

    /// The closure of an image at the current revision.
    pub fn closure(&self, image: usize) -> Vec<PathInfo> {
        self.members[image]
            .iter()
            .map(|&i| {
                let i = i as usize;
                let mut references: Vec<StorePath> = self.deps[i].iter().map(|&d| self.paths[d as usize].clone()).collect();
                references.push(self.paths[i].clone());
                // Nix lists references sorted (a set of store paths).
                references.sort();
                PathInfo::new(self.paths[i].clone(), self.sizes[i], references)
            })
            .collect()
    }

    /// The closure as exportReferencesGraph JSON.
    pub fn closure_json(&self, image: usize) -> String {
        graph_json(&self.closure(image))
    }

    /// Writes a dataset directory (`manifest.json` + `graphs/<image>/<rev>.json`) of
    /// `revisions` revisions, as `hints scan --dataset` reads it.
    pub fn write_dataset(mut self, dir: &std::path::Path, revisions: usize, prefix: &str) -> std::io::Result<()> {
        let mut revs = vec![];
        for r in 0..revisions {
            if r > 0 {
                self.advance();
            }
            for i in 0..self.shape.images {
                let d = dir.join("graphs").join(format!("{prefix}{}", self.image_name(i)));
                std::fs::create_dir_all(&d)?;
                std::fs::write(d.join(format!("{r}.json")), self.closure_json(i))?;
            }
            let commit = crate::store::hex(&Sha256::digest(format!("{prefix}{}{r}", self.shape.seed).as_bytes())[..20]);
            let time = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH + chrono::TimeDelta::days(20089 + r as i64);
            revs.push(serde_json::json!({"index": r, "label": format!("r{r}"), "commit": commit, "time": time.to_rfc3339()}));
        }
        let images: Vec<serde_json::Value> = (0..self.shape.images).map(|i| serde_json::json!({"name": format!("{prefix}{}", self.image_name(i))})).collect();
        std::fs::write(dir.join("manifest.json"), serde_json::to_string_pretty(&serde_json::json!({"revisions": revs, "images": images}))?)
    }
}

/// A closure as exportReferencesGraph JSON.
pub fn graph_json(closure: &[PathInfo]) -> String {
    let records: Vec<serde_json::Value> = closure
        .iter()
        .map(|p| {
            serde_json::json!({
                "path": p.record.path.as_str(),
                "narSize": p.record.nar_size,
                "references": p.references.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::to_string(&records).expect("serialises")
}

/// One wide image at `revision`: a root over `n` leaves, each a name of its own with a
/// heavy-tailed size; every 97th leaf (and so the root) is rebuilt at every revision.
pub fn wide_image(n: usize, revision: usize) -> Vec<PathInfo> {
    let mut rng = Rng::new(11);
    let mut leaves: Vec<PathInfo> = (0..n)
        .map(|i| {
            let build = if i % 97 == 0 { revision } else { 0 };
            let path = store_path(&Sha256::digest(format!("wide/{i}/{build}").as_bytes()), &format!("leaf{i}-1.{build}"));
            let nar_size = (4096.0 * (1.0 - rng.unit()).powf(-1.6)).min(4e9) as u64;
            PathInfo::new(path, nar_size, vec![])
        })
        .collect();
    let root = store_path(&Sha256::digest(format!("wide/root/{revision}").as_bytes()), "root");
    let references = leaves.iter().map(|p| p.record.path.clone()).collect();
    leaves.push(PathInfo::new(root, 4096, references));
    leaves
}

/// A store path in `/nix/store` named `name` whose hash is the first 20 bytes of `digest`
/// (which stands for everything a derivation hashes). `name` must be a valid store path name.
pub fn store_path(digest: &[u8], name: &str) -> StorePath {
    StorePath::parse(&format!("/nix/store/{}-{name}", nixbase32::encode(&digest[..20]))).expect("a valid name")
}

/// Graph shapes that stress the layering algorithms, one closure each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphShape {
    /// Each path references 3 earlier paths, picked in proportion to how often they are already
    /// referenced: a few libraries end up under almost everything.
    Preferential,
    /// Each path references the next one: as deep as a closure gets.
    Chain,
    /// One root references every other path: as wide as a closure gets.
    Fan,
    /// Every path references one hub and one random earlier path.
    Hub,
}

impl GraphShape {
    /// Every shape, in the order benchmarks print them.
    pub const ALL: [GraphShape; 4] = [GraphShape::Preferential, GraphShape::Chain, GraphShape::Fan, GraphShape::Hub];

    /// The shape's name in benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            GraphShape::Preferential => "preferential",
            GraphShape::Chain => "chain",
            GraphShape::Fan => "fan",
            GraphShape::Hub => "hub",
        }
    }

    /// A closure of `n` paths of this shape. Sizes are heavy-tailed, as in [`Synth`]: a few
    /// paths of hundreds of MB, many of a few KB.
    pub fn closure(self, n: usize, seed: u64) -> Vec<PathInfo> {
        let mut rng = Rng::new(seed);
        let paths: Vec<StorePath> = (0..n).map(|i| store_path(&Sha256::digest(format!("{seed}/{i}").as_bytes()), &format!("p{i}"))).collect();
        // Path i references only paths below it, so every shape is acyclic.
        let refs: Vec<Vec<usize>> = match self {
            GraphShape::Preferential => preferential(n, 3, &mut rng),
            GraphShape::Chain => (0..n).map(|i| if i == 0 { vec![] } else { vec![i - 1] }).collect(),
            GraphShape::Fan => (0..n).map(|i| if i + 1 == n { (0..i).collect() } else { vec![] }).collect(),
            GraphShape::Hub => (0..n).map(|i| if i < 2 { (0..i).collect() } else { vec![0, 1 + rng.below(i - 1)] }).collect(),
        };
        refs.into_iter()
            .enumerate()
            .map(|(i, r)| {
                let nar_size = (4096.0 * (1.0 - rng.unit()).powf(-1.6)).min(4e9) as u64;
                PathInfo::new(paths[i].clone(), nar_size, r.into_iter().map(|j| paths[j].clone()).collect())
            })
            .collect()
    }
}

/// Preferential attachment: path `i` references up to `m` distinct earlier paths, each drawn with
/// probability proportional to one plus the references it already has.
fn preferential(n: usize, m: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    // Each earlier path appears once, plus once per reference to it; a uniform draw from this
    // list is a draw in proportion to (1 + in-degree).
    let mut urn: Vec<usize> = Vec::with_capacity(n * (m + 1));
    let mut refs = Vec::with_capacity(n);
    for i in 0..n {
        let mut mine: Vec<usize> = Vec::with_capacity(m);
        for _ in 0..m.min(i) * 2 {
            let j = urn[rng.below(urn.len())];
            if mine.len() < m && !mine.contains(&j) {
                mine.push(j);
            }
        }
        urn.extend(&mine);
        urn.push(i);
        refs.push(mine);
    }
    refs
}
