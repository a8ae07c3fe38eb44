//! Build script: the build identifier `MXSIM_BUILD`, written into every trace header
//! beside `mxsim_version` (docs/trace.md).
//!
//! The identifier is the package version, `+`, and the first 16 hex digits of a SHA-256
//! over the source tree: `Cargo.toml`, `Cargo.lock`, `build.rs` and every file under
//! `src/` and `assets/`, in the order of their `/`-separated relative paths, each as its
//! path's length and bytes followed by its content's length and bytes. It depends only on
//! the checked-out files, not on git, file times or the machine, so a clean CI checkout
//! without `.git` gets the same identifier as a developer's tree with the same content.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What the identifier covers, relative to the package root.
const INPUTS: &[&str] = &["Cargo.toml", "Cargo.lock", "build.rs", "src", "assets"];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for input in INPUTS {
        println!("cargo:rerun-if-changed={input}");
        collect(&root, &root.join(input), &mut files);
    }
    files.sort();
    let mut hasher = Sha256::new();
    for (name, path) in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        hasher.update(u64::try_from(name.len()).expect("fits").to_be_bytes());
        hasher.update(name.as_bytes());
        hasher.update(u64::try_from(bytes.len()).expect("fits").to_be_bytes());
        hasher.update(&bytes);
    }
    let digest = hasher.finalize();
    let hex: String = digest[..8].iter().map(|byte| format!("{byte:02x}")).collect();
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets it");
    println!("cargo:rustc-env=MXSIM_BUILD={version}+{hex}");
}

/// Every file at or under `path`, with its `/`-separated path relative to `root`. A
/// missing input (a packaged crate has no `Cargo.lock`, say) contributes nothing.
fn collect(root: &Path, path: &Path, out: &mut Vec<(String, PathBuf)>) {
    if path.is_dir() {
        let entries = std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for entry in entries {
            collect(root, &entry.expect("a readable directory entry").path(), out);
        }
    } else if path.is_file() {
        let relative = path.strip_prefix(root).expect("under the root");
        let name: Vec<&str> =
            relative.components().map(|c| c.as_os_str().to_str().expect("UTF-8 path")).collect();
        out.push((name.join("/"), path.to_owned()));
    }
}
