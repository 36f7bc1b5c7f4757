//! The architecture's invariants, checked as tests (rust-analyzer's habit): the layer order of
//! ARCHITECTURE.md holds between the top-level modules, and no modules import each other in a
//! cycle. The layers are read from ARCHITECTURE.md itself, so the document and the code cannot
//! drift apart: a module missing from the list, an import of a higher layer, or a cycle fails.
//!
//! Comments are ignored (doc links may name any module); `#[cfg(test)]` code is held to the same
//! rule as the code it tests: it may import lower layers only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// The layers, lowest first, from the fenced block after "### Layers" in ARCHITECTURE.md: each
/// line names a layer's modules (`lib: a, b` or `bin: c`); a module may import only modules of
/// lower layers. Modules named but not yet written (the issues to come) are allowed.
fn layers() -> Vec<(String, Vec<String>)> {
    let doc = std::fs::read_to_string(Path::new(MANIFEST).join("ARCHITECTURE.md")).unwrap();
    let after = doc
        .split_once("### Layers")
        .expect("ARCHITECTURE.md has a '### Layers' section")
        .1;
    let block = after
        .split("```")
        .nth(1)
        .expect("the Layers section has a fenced block");
    block
        .lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap().trim();
            let (crate_kind, modules) = line.split_once(':')?;
            let modules = modules
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            Some((crate_kind.trim().to_string(), modules))
        })
        .collect()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (line comments and doc comments; the code base
/// writes no block comments) and string literals' contents kept (they never hold paths).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module names a piece of code refers to after `root::` (`crate`, `pipeline_ledger`,
/// `super`), including grouped imports (`use crate::{a, b::c}`).
fn referenced(code: &str, root: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let needle = format!("{root}::");
    let mut rest = code;
    while let Some(i) = rest.find(&needle) {
        let before = rest[..i].chars().last();
        rest = &rest[i + needle.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `my_crate::` is not `crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group, at brace depth 0.
            let mut depth = 0;
            let mut name = String::new();
            let mut names = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => names.push(std::mem::take(&mut name)),
                    _ if depth == 0 => name.push(c),
                    _ => {}
                }
            }
            names.push(name);
            for n in names {
                let head: String = n
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !head.is_empty() && head != "self" {
                    out.insert(head);
                }
            }
        } else {
            let head: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !head.is_empty() {
                out.insert(head);
            }
        }
    }
    out
}

/// A source file: which crate it belongs to, its top-level module, and the module path of its
/// own directory (for `super::`).
struct Source {
    crate_kind: &'static str,
    top: String,
    code: String,
}

/// The binary's crate roots and modules: everything reached from `src/main.rs`.
const BINARY_MODULES: [&str; 4] = ["cli", "bench", "present", "server"];

fn sources() -> Vec<(PathBuf, Source)> {
    let src = Path::new(MANIFEST).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(&src).unwrap().to_path_buf();
            let first = rel
                .components()
                .next()?
                .as_os_str()
                .to_string_lossy()
                .to_string();
            let top = first.trim_end_matches(".rs").to_string();
            if top == "lib" || top == "main" {
                return None; // crate roots declare modules; they import nothing of note
            }
            let crate_kind = if BINARY_MODULES.contains(&top.as_str()) {
                "bin"
            } else {
                "lib"
            };
            let code = code_of(&std::fs::read_to_string(&path).unwrap());
            Some((
                rel,
                Source {
                    crate_kind,
                    top,
                    code,
                },
            ))
        })
        .collect()
}

#[test]
fn every_module_imports_only_lower_layers() {
    let layers = layers();
    let rank: BTreeMap<(String, String), usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, (kind, modules))| {
            modules.iter().map(move |m| ((kind.clone(), m.clone()), i))
        })
        .collect();
    let mut violations = Vec::new();
    for (path, source) in sources() {
        let own = (source.crate_kind.to_string(), source.top.clone());
        let Some(&own_rank) = rank.get(&own) else {
            violations.push(format!(
                "{}: module {} is in no layer of ARCHITECTURE.md",
                path.display(),
                source.top
            ));
            continue;
        };
        // In the library, `crate::` names library modules; in the binary, binary modules, and
        // `pipeline_ledger::` names the library from both.
        let mut uses: Vec<(String, String)> = referenced(&source.code, "pipeline_ledger")
            .into_iter()
            .map(|m| ("lib".to_string(), m))
            .collect();
        uses.extend(
            referenced(&source.code, "crate")
                .into_iter()
                .map(|m| (source.crate_kind.to_string(), m)),
        );
        for used in uses {
            if used == own {
                continue;
            }
            match rank.get(&used) {
                Some(&r) if r < own_rank => {}
                Some(_) => violations.push(format!(
                    "{}: {} {} imports {} {}, which is not in a lower layer",
                    path.display(),
                    own.0,
                    own.1,
                    used.0,
                    used.1
                )),
                None => violations.push(format!(
                    "{}: imports {} {}, which is in no layer",
                    path.display(),
                    used.0,
                    used.1
                )),
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer violations:\n{}",
        violations.join("\n")
    );
}

/// Sibling modules (files of one directory, its `mod.rs` aside) never import each other in a
/// cycle: a newcomer can read them bottom-up.
#[test]
fn no_sibling_modules_import_each_other_in_a_cycle() {
    let src = Path::new(MANIFEST).join("src");
    let mut by_dir: BTreeMap<PathBuf, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (rel, source) in sources() {
        let dir = rel.parent().unwrap().to_path_buf();
        let name = rel.file_stem().unwrap().to_string_lossy().to_string();
        if name == "mod" || dir.as_os_str().is_empty() {
            continue;
        }
        // The module path of the directory, as `crate::a::b`.
        let dir_path: Vec<String> = dir
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        let mut deps = referenced(&source.code, "super");
        let prefix = format!("crate::{}", dir_path.join("::"));
        let lib_prefix = format!("pipeline_ledger::{}", dir_path.join("::"));
        for root in [&prefix, &lib_prefix] {
            if source.crate_kind == "bin" && root.starts_with("pipeline_ledger") {
                continue;
            }
            deps.extend(referenced(&source.code, root));
        }
        deps.remove(&name);
        by_dir.entry(dir).or_default().insert(name, deps);
    }
    let mut cycles = Vec::new();
    for (dir, graph) in &by_dir {
        // Only edges between siblings count.
        let graph: BTreeMap<&String, Vec<&String>> = graph
            .iter()
            .map(|(m, deps)| (m, deps.iter().filter(|d| graph.contains_key(*d)).collect()))
            .collect();
        for start in graph.keys() {
            // Depth-first search for a path back to `start`.
            let mut stack: Vec<(&String, Vec<&String>)> = vec![(start, vec![start])];
            let mut seen = BTreeSet::new();
            while let Some((node, path)) = stack.pop() {
                for next in &graph[node] {
                    if next == start {
                        let mut cycle: Vec<String> = path.iter().map(|s| s.to_string()).collect();
                        cycle.push(start.to_string());
                        cycles.push(format!(
                            "{}: {}",
                            src.join(dir).display(),
                            cycle.join(" -> ")
                        ));
                    } else if seen.insert(*next) {
                        let mut p = path.clone();
                        p.push(next);
                        stack.push((next, p));
                    }
                }
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_reference_scanner_sees_grouped_imports_and_ignores_comments() {
    let code = code_of(
        "use crate::{domain::X, store::{Y, Z}};\n// crate::query in a comment\nlet a = crate::ledger::f();",
    );
    let found = referenced(&code, "crate");
    assert_eq!(
        found,
        ["domain", "ledger", "store"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert!(referenced("my_crate::x", "crate").is_empty());
}
