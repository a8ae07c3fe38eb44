//! Tidy checks: the layer edges of DESIGN.md §2, module docs, and the determinism bans of
//! DESIGN.md §3, enforced by reading the source rather than by review.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module's layer and the modules it may use (itself always allowed). Keep
/// in sync with ARCHITECTURE.md "Code map" and the declaration order of `src/lib.rs`. An
/// entry `module::sub` allows only that submodule, named in full (`crate::matrix::ids::…`,
/// not `crate::matrix::{ids, …}` or a re-export). Every edge points to a lower layer.
const LAYERS: &[(u8, &str, &[&str])] = &[
    (0, "stdx", &[]),
    (1, "matrix", &[]),
    (1, "net", &["stdx"]),
    (2, "homeserver", &["stdx", "matrix"]),
    (
        2,
        "scenario",
        &[
            "stdx",
            "net",
            "matrix::ids",
            "matrix::room_version",
            "matrix::canonical_json",
            "matrix::action",
        ],
    ),
    (2, "synth", &["stdx", "matrix"]),
    (2, "trace", &["stdx", "matrix", "net"]),
    (3, "check", &["stdx", "matrix", "trace"]),
    (3, "world", &["stdx", "matrix", "homeserver", "net", "scenario", "trace"]),
    (4, "report", &["stdx", "matrix", "trace", "check"]),
    (4, "sweep", &["stdx", "world", "scenario", "check", "trace"]),
    (
        5,
        "cli",
        &[
            "stdx",
            "matrix",
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

/// Banned tokens allowed in one file each, where the file keeps what the ban guards
/// against: `matrix/ids/id_map.rs` holds a hash map behind a type that hands out its
/// entries only sorted or to an order-independent question.
const BAN_EXCEPTIONS: &[(&str, &str)] = &[("HashMap", "matrix/ids/id_map.rs")];

/// Crates fenced into one file each (ARCHITECTURE.md "Dependencies"): no other file under
/// `src/` may name them in code.
const FENCED: &[(&str, &str)] = &[
    ("sha2", "matrix/crypto.rs"),
    ("ed25519_dalek", "matrix/crypto.rs"),
    ("base64", "matrix/crypto.rs"),
    ("mimalloc", "main.rs"),
    ("libmimalloc_sys", "main.rs"),
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
/// the crate roots: `lib.rs`, and the binaries `main.rs` and `bin/*.rs`.
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src_dir()).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?.to_owned();
    if first == "bin" {
        return None;
    }
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

/// Whether the path after `crate::` names a module in `allowed` (or inside one).
fn edge_allowed(allowed: &[&str], path: &str) -> bool {
    let segment = |text: &str| -> String { text.chars().take_while(|&c| is_ident(c)).collect() };
    let top = segment(path);
    let sub = path[top.len()..].strip_prefix("::").map(segment).unwrap_or_default();
    allowed.iter().any(|entry| match entry.split_once("::") {
        Some((entry_top, entry_sub)) => entry_top == top && entry_sub == sub,
        None => *entry == top,
    })
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
    let layers: BTreeMap<&str, &[&str]> =
        LAYERS.iter().map(|&(_, module, allowed)| (module, allowed)).collect();
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
                let rest = &code[at + "crate::".len()..];
                let used: String = rest.chars().take_while(|&c| is_ident(c)).collect();
                if used != module && !edge_allowed(allowed, rest) {
                    let named: String =
                        rest.chars().take_while(|&c| is_ident(c) || c == ':').collect();
                    violations.push(format!(
                        "{}:{}: {module} may not use crate::{}",
                        path.display(),
                        number + 1,
                        named.trim_end_matches(':')
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "forbidden layer edges:\n{}", violations.join("\n"));
}

#[test]
fn the_layer_table_points_down() {
    let layer_of = |module: &str| LAYERS.iter().find(|(_, m, _)| *m == module).map(|l| l.0);
    for &(layer, module, allowed) in LAYERS {
        for entry in allowed {
            let used = entry.split("::").next().unwrap();
            let used_layer = layer_of(used).unwrap_or_else(|| panic!("{used} has no layer"));
            assert!(used_layer < layer, "{module} (L{layer}) may use {used} (L{used_layer})");
        }
    }
}

#[test]
fn lib_declares_the_modules_in_layer_order() {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let lines: Vec<&str> = lib.lines().collect();
    let mut declared = Vec::new();
    for (number, line) in lines.iter().enumerate() {
        let Some(module) = line.strip_prefix("pub mod ").and_then(|m| m.strip_suffix(';')) else {
            continue;
        };
        let Some(&(layer, _, _)) = LAYERS.iter().find(|(_, m, _)| *m == module) else {
            panic!("lib.rs declares {module}, which is not in the layer table");
        };
        // One `///` line right above, naming the layer.
        let doc = number.checked_sub(1).map(|above| lines[above]).unwrap_or_default();
        let prefix = format!("/// L{layer}: ");
        assert!(doc.starts_with(&prefix), "lib.rs: `pub mod {module};` needs a `{prefix}…` doc");
        let before = number.checked_sub(2).map(|above| lines[above]).unwrap_or_default();
        assert!(!before.starts_with("///"), "lib.rs: the doc of {module} is one line");
        declared.push((layer, module));
    }
    let table: Vec<(u8, &str)> = LAYERS.iter().map(|&(layer, module, _)| (layer, module)).collect();
    assert_eq!(declared, table, "lib.rs declares the modules in the layer table's order");
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
                let excepted = BAN_EXCEPTIONS
                    .iter()
                    .any(|&(t, file)| t == *token && path.ends_with(Path::new(file)));
                if is_banned(&code, token) && !excepted {
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
    assert_eq!(module_of(&src_dir().join("bin/mxsim-resolve.rs")), None);
    assert!(edge_allowed(&["net"], "net::Fault;"));
    assert!(!edge_allowed(&["net"], "netx::Fault;"));
    assert!(edge_allowed(&["matrix::ids"], "matrix::ids::parse_user_id(id)"));
    assert!(!edge_allowed(&["matrix::ids"], "matrix::pdu::Pdu;"));
    assert!(!edge_allowed(&["matrix::ids"], "matrix::{ids, pdu};"));
    assert!(!edge_allowed(&["matrix::ids"], "matrix::RoomVersion;"));
}
