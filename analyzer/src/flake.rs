//! `hints scan --flake REF`: a flake's image outputs, found and scanned without listing
//! installables by hand.
//!
//! # Objective
//! A developer about to update a flake's inputs runs `hints scan --flake .` so the history holds
//! every image at the current commit; the periodic job does the same. Nobody keeps a list of
//! `NAME=INSTALLABLE` pairs in sync with the flake.
//!
//! # Definitions
//! - The *system* is the one `nix` runs on (`builtins.currentSystem`).
//! - *Image outputs* are the attributes of `packages.<system>` named `image` or ending in
//!   `-image`, `_image` or `Image` (as `dockerTools` images are commonly named), unless the flake's
//!   directory holds a `hints.toml` whose `[scan]` table lists them: `images = ["api", "worker"]`.
//!   The attribute's name is the image's name in the history.
//!
//! # Algorithm
//! 1. Ask `nix` for the system, then for the attribute names of `REF#packages.<system>`.
//! 2. Keep the image outputs (the configured list must name existing attributes).
//! 3. Build each (`nix build --no-link`), then read its closure with `nix path-info --json
//!    --recursive`, as `hints scan --nix` does.

use std::path::Path;

use serde::Deserialize;

use crate::scan::{run_nix, ScanError};

/// The config file read from a local flake's directory.
pub const CONFIG: &str = "hints.toml";

/// One image output of a flake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlakeImage {
    /// The attribute name, and the image's name in the history.
    pub name: String,
    /// `REF#packages.<system>.<name>`.
    pub installable: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    scan: Option<ScanSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanSection {
    images: Vec<String>,
}

/// Whether an attribute name follows the naming convention for images.
pub fn is_image_name(name: &str) -> bool {
    name == "image" || ["-image", "_image", "Image"].iter().any(|s| name.len() > s.len() && name.ends_with(s))
}

/// The image outputs of `flake` (see the module doc).
pub fn images(flake: &str) -> Result<Vec<FlakeImage>, ScanError> {
    let system = run_nix(&["eval", "--impure", "--raw", "--expr", "builtins.currentSystem"])?;
    let packages = format!("{flake}#packages.{system}");
    let names: Vec<String> = serde_json::from_str(&run_nix(&["eval", "--json", &packages, "--apply", "builtins.attrNames"])?)
        .map_err(|e| ScanError::Usage(format!("{packages}: nix printed something other than a list of names: {e}")))?;
    let chosen = match configured(flake)? {
        Some(listed) => {
            if let Some(missing) = listed.iter().find(|l| !names.contains(l)) {
                return Err(ScanError::Usage(format!("{}: `{missing}` is not an attribute of {packages} (it has: {})", config_path(flake).display(), names.join(", "))));
            }
            listed
        }
        None => names.into_iter().filter(|n| is_image_name(n)).collect(),
    };
    if chosen.is_empty() {
        return Err(ScanError::Usage(format!("{packages} has no image outputs: name them `image` or `*-image`, or list them in {CONFIG} as `[scan] images = [\"api\"]`")));
    }
    Ok(chosen.into_iter().map(|name| FlakeImage { installable: format!("{packages}.{name}"), name }).collect())
}

/// Builds an installable without a result link.
pub fn build(installable: &str) -> Result<(), ScanError> {
    run_nix(&["build", "--no-link", installable]).map(drop)
}

/// The directory of a flake given as a local path (`.`, `/src/app`, `path:/src/app`).
pub fn local_dir(flake: &str) -> Option<&Path> {
    match flake.strip_prefix("path:") {
        Some(dir) => Some(Path::new(dir)),
        None if !flake.contains(':') => Some(Path::new(flake)),
        None => None,
    }
}

fn config_path(flake: &str) -> std::path::PathBuf {
    local_dir(flake).unwrap_or(Path::new(".")).join(CONFIG)
}

/// The configured image list, for a flake given as a local directory that holds [`CONFIG`].
fn configured(flake: &str) -> Result<Option<Vec<String>>, ScanError> {
    let file = config_path(flake);
    if local_dir(flake).is_none() || !file.is_file() {
        return Ok(None);
    }
    let name = file.display().to_string();
    let text = crate::scan::read_text(&name)?;
    let config: Config = toml::from_str(&text).map_err(|e| ScanError::Usage(format!("{name}: {e}")))?;
    Ok(config.scan.map(|s| s.images))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_follow_the_convention() {
        for yes in ["image", "api-image", "api_image", "dockerImage"] {
            assert!(is_image_name(yes), "{yes}");
        }
        for no in ["imagemagick", "images", "tool", "-image", "Image"] {
            assert!(!is_image_name(no), "{no}");
        }
    }

    #[test]
    fn a_config_with_an_unknown_key_names_the_file_and_line() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(CONFIG), "[scan]\nimages = [\"a\"]\nimagez = 1\n").unwrap();
        let e = configured(t.path().to_str().unwrap()).err().unwrap().to_string();
        assert!(e.contains("hints.toml") && e.contains("line 3") && e.contains("imagez"), "{e}");
        std::fs::write(t.path().join(CONFIG), "[scan]\nimages = [\"api\", \"worker\"]\n").unwrap();
        assert_eq!(configured(t.path().to_str().unwrap()).unwrap(), Some(vec!["api".to_string(), "worker".to_string()]));
    }
}
