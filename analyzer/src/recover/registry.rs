//! Images from a registry (`hints scan --registry`), through `skopeo`: its tags are listed,
//! those matching a glob copied into one local OCI directory (blobs shared between tags are
//! fetched once, and a re-run fetches nothing it has), and each opened as an [`Image`].
//!
//! Credentials come from the containers auth file, as for any `skopeo` or `podman` command.
//! TLS verification can be turned off for loopback registries only.

use std::path::Path;
use std::process::Command;

use super::{Image, RecoverError};

/// A repository, `docker://HOST[:PORT]/REPO`, with its host checked.
pub struct Repository {
    reference: String,
    tls_verify: bool,
}

impl Repository {
    /// Parses `docker://HOST/REPO`; `tls_verify = false` is refused unless HOST is loopback.
    pub fn new(reference: &str, tls_verify: bool) -> Result<Repository, RecoverError> {
        let bad = |what: &str| RecoverError::Registry { reference: reference.to_string(), what: what.to_string() };
        let rest = reference.strip_prefix("docker://").ok_or_else(|| bad("expected docker://HOST/REPO"))?;
        let (host, repo) = rest.split_once('/').ok_or_else(|| bad("expected docker://HOST/REPO"))?;
        if repo.is_empty() || repo.contains(':') || repo.contains('@') {
            return Err(bad("name the repository without a tag (--tags selects them)"));
        }
        let hostname = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !tls_verify && !matches!(hostname, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(bad("--tls-verify=false is allowed only for a registry on this machine (127.0.0.1, localhost, [::1])"));
        }
        Ok(Repository { reference: reference.to_string(), tls_verify })
    }

    /// Runs `skopeo ARGS`; its error output is the message when it fails.
    fn skopeo(&self, args: &[&str]) -> Result<String, RecoverError> {
        let err = |what: String| RecoverError::Registry { reference: self.reference.clone(), what };
        let out = Command::new("skopeo").args(args).output().map_err(|e| err(format!("cannot run skopeo ({e}); install it (Debian: skopeo)")))?;
        if !out.status.success() {
            return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The repository's tags matching `glob`, sorted.
    pub fn tags(&self, glob: &str) -> Result<Vec<String>, RecoverError> {
        let err = |what: String| RecoverError::Registry { reference: self.reference.clone(), what };
        let pattern = glob::Pattern::new(glob).map_err(|e| err(format!("--tags {glob}: {e}")))?;
        let tls = format!("--tls-verify={}", self.tls_verify);
        let listed: serde_json::Value = serde_json::from_str(&self.skopeo(&["list-tags", &tls, &self.reference])?).map_err(|e| err(format!("skopeo list-tags: {e}")))?;
        let mut tags: Vec<String> = listed["Tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str()).filter(|t| pattern.matches(t)).map(str::to_string).collect();
        tags.sort();
        Ok(tags)
    }

    /// Copies `tag` into the OCI directory `dir` (blobs it holds are not fetched again) and
    /// opens it.
    pub fn fetch(&self, tag: &str, dir: &Path) -> Result<Image, RecoverError> {
        std::fs::create_dir_all(dir).map_err(|e| RecoverError::Registry { reference: self.reference.clone(), what: format!("{}: {e}", dir.display()) })?;
        let tls = format!("--src-tls-verify={}", self.tls_verify);
        self.skopeo(&["copy", "--quiet", &tls, &format!("{}:{tag}", self.reference), &format!("oci:{}:{tag}", dir.display())])?;
        Image::open(dir, Some(tag))
    }
}
