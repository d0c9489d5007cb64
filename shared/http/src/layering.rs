//! Holds the crate to the bottom-up order of the `# Layout` list in `lib.rs`.
//!
//! The list is the one statement of the order: this test reads it, then reads
//! each module's source and fails when code in a module names a module listed
//! below it (a `crate::x` path that is not in a comment), or when a module is
//! missing from the list. A cycle cannot pass, since one of its modules would
//! have to name one listed below it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const LIB: &str = include_str!("lib.rs");

/// The modules of the `# Layout` list, in its order.
fn layout() -> Vec<String> {
    LIB.lines()
        .filter_map(|line| line.strip_prefix("//! - "))
        .filter_map(|item| {
            let item = item.strip_prefix('[').unwrap_or(item);
            let name = item.strip_prefix('`')?.split('`').next()?;
            Some(name.to_owned())
        })
        .collect()
}

/// The modules `lib.rs` declares, but for this one.
fn declared() -> BTreeSet<String> {
    LIB.lines()
        .filter_map(|line| line.strip_prefix("pub mod ").or(line.strip_prefix("mod ")))
        .map(|rest| rest.trim_end_matches(';').to_owned())
        .filter(|name| name != "layering")
        .collect()
}

/// `src/<module>.rs` and the files of `src/<module>/`, if any.
fn sources(module: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // A module is `src/x.rs`, or a folder `src/x/` (with `mod.rs`), or both.
    let mut files: Vec<PathBuf> = Some(src.join(format!("{module}.rs")))
        .filter(|file| file.exists())
        .into_iter()
        .collect();
    if let Ok(dir) = std::fs::read_dir(src.join(module)) {
        files.extend(dir.filter_map(Result::ok).map(|entry| entry.path()));
    }
    files
}

/// The modules that code (not comments) in `source` names as `crate::x`.
fn uses(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, prefix) in code.match_indices("crate::") {
        let rest = &code[at + prefix.len()..];
        match rest.strip_prefix('{') {
            // `use crate::{a, b::C};`
            Some(group) => {
                let group = group.split('}').next().unwrap_or_default();
                found.extend(group.split(',').map(ident).filter(|m| !m.is_empty()));
            }
            None => {
                found.insert(ident(rest));
            }
        }
    }
    found
}

#[test]
fn the_layout_list_names_every_module_once() {
    let listed = layout();
    let unique: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "listed twice: {listed:?}");
    assert_eq!(
        unique,
        declared(),
        "the # Layout list and the `mod`s differ"
    );
}

#[test]
fn modules_use_only_modules_listed_above_them() {
    let listed = layout();
    for (at, module) in listed.iter().enumerate() {
        let allowed = &listed[..=at];
        for file in sources(module) {
            let source = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            for used in uses(&source) {
                assert!(
                    allowed.contains(&used),
                    "{} uses crate::{used}, which the # Layout list of lib.rs does not put before {module}",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn uses_reads_paths_and_groups_but_not_comments() {
    let source =
        "use crate::a::B;\n// crate::hidden\nlet x = crate::c::f();\nuse crate::{d, e::F};";
    let expected: BTreeSet<String> = ["a", "c", "d", "e"].map(String::from).into();
    assert_eq!(uses(source), expected);
}
