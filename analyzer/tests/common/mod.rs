//! Shared by the tests that use a real Nix store: the repository, running commands, and the toy
//! world (nix/tests/toy.nix) with its busybox-only builder and the `hints` binary as a tool.

// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs `cmd`, failing the test with its output if it fails; returns its standard output.
pub fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed:\n{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// Whether every tool runs here. Outside CI a missing one skips the test (saying so); under CI
/// it fails it, since `.ci/run` installs them all.
pub fn have_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| Command::new(t).arg("--version").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().is_err()).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI must have {} (see .ci/run)", missing.join(", "));
    eprintln!("{} not installed; skipping outside CI", missing.join(", "));
    false
}

/// The toy world's inputs under a temporary directory: `bb/bin/{busybox,sh}` (the builder) and
/// `tool/bin/hints` (the binary cargo built, for `nix/lib.nix`).
pub struct Toy {
    pub dir: PathBuf,
}

impl Toy {
    pub fn new(t: &Path) -> Toy {
        std::fs::create_dir_all(t.join("bb/bin")).unwrap();
        let busybox = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).exists()).expect("busybox-static");
        std::fs::copy(busybox, t.join("bb/bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", t.join("bb/bin/sh")).unwrap();
        std::fs::create_dir_all(t.join("tool/bin")).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_hints"), t.join("tool/bin/hints")).unwrap();
        Toy { dir: t.to_path_buf() }
    }

    pub fn expr() -> PathBuf {
        repo().join("nix/tests/toy.nix")
    }

    pub fn busybox(&self) -> PathBuf {
        self.dir.join("bb")
    }

    pub fn tool(&self) -> PathBuf {
        self.dir.join("tool")
    }

    /// Builds `attr` of the toy world at `revision`; returns its store path.
    pub fn build(&self, revision: usize, attr: &str) -> String {
        ok(Command::new("nix-build").arg(Self::expr()).args(["--arg", "busybox"]).arg(self.busybox()).args(["--arg", "revision", &revision.to_string(), "-A", attr, "--no-out-link"]))
            .trim()
            .to_string()
    }
}
