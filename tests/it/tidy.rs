//! Tidy checks: the layer edges of DESIGN.md §2, module docs, and the determinism bans of
//! DESIGN.md §3, enforced by reading the source rather than by review.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The modules each top-level module may use (itself always allowed). Keep in sync with
/// ARCHITECTURE.md "Code map".
const LAYERS: &[(&str, &[&str])] = &[
    ("stdx", &[]),
    ("matrix", &[]),
    ("invariant", &[]),
    ("net", &["stdx"]),
    ("homeserver", &["stdx", "matrix"]),
    ("synth", &["stdx", "matrix"]),
    ("scenario", &["stdx", "invariant", "net"]),
    ("trace", &["stdx", "matrix", "invariant", "net"]),
    ("world", &["stdx", "matrix", "homeserver", "net", "scenario", "trace"]),
    ("check", &["stdx", "matrix", "invariant", "trace"]),
    ("report", &["stdx", "matrix", "invariant", "trace", "check"]),
    ("sweep", &["stdx", "invariant", "world", "scenario", "check", "trace"]),
    (
        "cli",
        &[
            "stdx",
            "matrix",
            "invariant",
            "net",
            "homeserver",
            "scenario",
            "trace",
            "world",
            "check",
            "report",
            "sweep",
        ],
    ),
];

/// Modules where decisions are made and recorded: nothing nondeterministic may appear.
const DETERMINISTIC: &[&str] = &[
    "stdx",
    "matrix",
    "invariant",
    "net",
    "homeserver",
    "synth",
    "scenario",
    "trace",
    "world",
    "check",
    "sweep",
];

/// Tokens banned in deterministic modules, with the reason.
const BANNED: &[(&str, &str)] = &[
    ("HashMap", "iteration order: use BTreeMap"),
    ("HashSet", "iteration order: use BTreeSet"),
    ("SystemTime", "wall clock: use virtual time"),
    ("Instant::now", "wall clock: use virtual time"),
    ("thread_rng", "OS randomness: use stdx::Prng"),
    ("OsRng", "OS randomness: use stdx::Prng"),
    ("from_entropy", "OS randomness: use stdx::Prng"),
    ("getrandom", "OS randomness: use stdx::Prng"),
    ("std::env", "environment: only cli reads it"),
    ("std::fs", "files: only cli touches them"),
    ("std::thread", "threads: one simulation is one thread"),
    ("f32", "floats: use integers or stdx::Ratio"),
    ("f64", "floats: use integers or stdx::Ratio"),
];

/// Crates fenced into one file each (ARCHITECTURE.md "Dependencies"): no other file under
/// `src/` may name them in code.
const FENCED: &[(&str, &str)] = &[
    ("sha2", "matrix/crypto.rs"),
    ("ed25519_dalek", "matrix/crypto.rs"),
    ("base64", "matrix/crypto.rs"),
];

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file belongs to (`src/matrix/pdu.rs` → `matrix`), or `None` for
/// the crate roots.
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src_dir()).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?.to_owned();
    if relative.components().count() == 1 {
        let stem = first.trim_end_matches(".rs");
        return (stem != "lib" && stem != "main").then(|| stem.to_owned());
    }
    Some(first)
}

/// Code without `//` comments and without string literal contents (so that a doc
/// sentence mentioning `HashMap` does not trip the check).
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            if c == '\\' {
                chars.next();
            } else if c == '"' {
                in_string = false;
                out.push('"');
            }
            continue;
        }
        if c == '/' && chars.peek() == Some(&'/') {
            break;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `token` occurs in `code` as a whole word.
fn has_word(code: &str, token: &str) -> bool {
    code.match_indices(token).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + token.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Whether a banned token occurs. Float types also count as literal suffixes (`1.0_f64`,
/// `2f32`), where a digit or `_` precedes them.
fn is_banned(code: &str, token: &str) -> bool {
    if token == "f32" || token == "f64" {
        return code.match_indices(token).any(|(at, _)| {
            let before = code[..at].chars().next_back();
            let after = code[at + token.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_alphabetic()) && !after.is_some_and(is_ident)
        });
    }
    has_word(code, token)
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    source_files(&src_dir(), &mut files);
    assert!(files.len() > 5, "found too few source files under {}", src_dir().display());
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            !text.lines().find(|l| !l.trim().is_empty()).is_some_and(|l| l.starts_with("//!"))
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a //! module doc: {missing:#?}");
}

#[test]
fn layers_point_down_only() {
    let layers: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    source_files(&src_dir(), &mut files);
    let mut violations = Vec::new();
    for path in &files {
        let Some(module) = module_of(path) else { continue };
        let Some(allowed) = layers.get(module.as_str()) else {
            violations
                .push(format!("{}: module {module} is not in the layer table", path.display()));
            continue;
        };
        let text = std::fs::read_to_string(path).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = code_of(line);
            for (at, _) in code.match_indices("crate::") {
                if code[..at].chars().next_back().is_some_and(is_ident) {
                    continue;
                }
                let used: String =
                    code[at + "crate::".len()..].chars().take_while(|&c| is_ident(c)).collect();
                if used != module && !allowed.contains(&used.as_str()) {
                    violations.push(format!(
                        "{}:{}: {module} may not use crate::{used}",
                        path.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "forbidden layer edges:\n{}", violations.join("\n"));
}

#[test]
fn deterministic_layers_use_no_nondeterminism() {
    let mut files = Vec::new();
    source_files(&src_dir(), &mut files);
    let mut violations = Vec::new();
    for path in &files {
        let Some(module) = module_of(path) else { continue };
        if !DETERMINISTIC.contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = code_of(line);
            for (token, reason) in BANNED {
                if is_banned(&code, token) {
                    violations.push(format!(
                        "{}:{}: {token} ({reason})",
                        path.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "nondeterminism in deterministic layers:\n{}",
        violations.join("\n")
    );
}

#[test]
fn fenced_crates_are_named_only_in_their_file() {
    let mut files = Vec::new();
    source_files(&src_dir(), &mut files);
    let mut violations = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(src_dir()).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = code_of(line);
            for (krate, home) in FENCED {
                if has_word(&code, krate) && relative != Path::new(home) {
                    violations.push(format!(
                        "{}:{}: {krate} (only src/{home} may use it)",
                        path.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "fenced crates used elsewhere:\n{}", violations.join("\n"));
}

#[test]
fn the_checker_itself_can_fail() {
    // The helpers above must see what they are meant to see.
    assert!(has_word("let m: HashMap<u8, u8>;", "HashMap"));
    assert!(!has_word("let m: MyHashMapLike;", "HashMap"));
    assert!(is_banned("let x = 1.0_f64;", "f64"));
    assert!(is_banned("let x: f32 = 2f32;", "f32"));
    assert!(!is_banned("let buf64 = 1;", "f64"));
    assert!(is_banned("use std::env;", "std::env"));
    // The crate `sha2` is a word in `use sha2::Digest`, not in `crypto::sha256`.
    assert!(has_word("use sha2::{Digest, Sha256};", "sha2"));
    assert!(!has_word("let h = crypto::sha256(&b);", "sha2"));
    assert!(!has_word(&code_of("x(\"hashes.sha2 field\"); // sha2"), "sha2"));
    assert_eq!(code_of("use x; // HashMap here"), "use x; ");
    assert_eq!(code_of("let s = \"HashMap\";"), "let s = \"\";");
    assert_eq!(module_of(&src_dir().join("matrix/pdu.rs")).as_deref(), Some("matrix"));
    assert_eq!(module_of(&src_dir().join("cli.rs")).as_deref(), Some("cli"));
    assert_eq!(module_of(&src_dir().join("lib.rs")), None);
}
