//! The published contract under `schemas/` is what the types generate, complete, and valid JSON
//! Schema (`UPDATE_SCHEMAS=1 cargo test --test schemas` rewrites the files).

use pipeline_ledger::contract::{DIALECT, schema_files, schema_key, write_schema_files};
use pipeline_ledger::domain::EventType;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const UPDATE_ENV: &str = "UPDATE_SCHEMAS";

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// Every `.json` file under `dir`, by its path relative to `dir` (with `/` separators).
fn checked_in(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path.strip_prefix(root).unwrap();
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(key, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn checked_in_schemas_equal_the_generated_ones() {
    let dir = schemas_dir();
    let generated = schema_files();
    if std::env::var_os(UPDATE_ENV).is_some() {
        for stale in checked_in(&dir)
            .keys()
            .filter(|k| !generated.contains_key(*k))
        {
            std::fs::remove_file(dir.join(stale)).unwrap();
        }
        write_schema_files(&dir).unwrap();
    }
    let files = checked_in(&dir);
    let regenerate = format!(
        "schemas/ is stale: run `{UPDATE_ENV}=1 cargo test --test schemas` to regenerate it, \
         and review and commit the change (it changes the published contract)"
    );
    let missing: Vec<&String> = generated
        .keys()
        .filter(|k| !files.contains_key(*k))
        .collect();
    let extra: Vec<&String> = files
        .keys()
        .filter(|k| !generated.contains_key(*k))
        .collect();
    let differing: Vec<&String> = generated
        .iter()
        .filter(|(k, text)| files.get(*k).is_some_and(|f| f != *text))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differing.is_empty(),
        "{regenerate}\n  missing: {missing:?}\n  not generated any more: {extra:?}\n  differing: {differing:?}"
    );
}

#[test]
fn every_event_type_and_version_has_a_published_schema() {
    let files = schema_files();
    for t in EventType::ALL {
        for v in 1..=t.current_version() {
            assert!(
                files.contains_key(&format!("events/{}.json", schema_key(*t, v))),
                "{t} v{v}"
            );
        }
    }
    assert!(files.contains_key("envelope.json"));
    assert!(files.contains_key("interchange-line.json"));
}

#[test]
fn every_schema_is_draft_2020_12_and_compiles() {
    for (path, text) in schema_files() {
        let schema: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(schema["$schema"], json!(DIALECT), "{path}");
        jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("{path} does not compile: {e}"));
    }
}
