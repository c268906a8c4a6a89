//! Every `labs/*.clab.yml` is a valid containerlab file: it validates
//! against containerlab's own JSON schema.
//!
//! The schema is reference data kept outside the project
//! (`../shared/containerlab/clab.schema.json` from the project root, see
//! its README there), read from there and not copied in. `CLAB_SCHEMA`
//! names another copy. Where neither is at hand (a fresh clone alone) the
//! tests say, past cargo's capture of test output, that they did not run,
//! and pass; with `WGD_REQUIRE_CLAB_SCHEMA=1` (as `.ci/run` sets) they
//! fail instead. A `CLAB_SCHEMA` that names no file always fails.

use std::io::Write;
use std::path::{Path, PathBuf};

fn labs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("labs/runner is inside labs/")
        .to_owned()
}

/// The schema to check against: `CLAB_SCHEMA`, else the shared copy when
/// it is there. `None` (after saying so) when the check cannot run here.
fn schema_path(test: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CLAB_SCHEMA") {
        return Some(PathBuf::from(path));
    }
    let beside = labs_dir()
        .parent()
        .and_then(Path::parent)
        .expect("the checkout is in a folder")
        .to_owned();
    let shared = beside.join("shared/containerlab/clab.schema.json");
    if shared.is_file() {
        return Some(shared);
    }
    let why = format!(
        "containerlab's schema is not at hand ({} is missing and CLAB_SCHEMA is not set)",
        shared.display()
    );
    assert!(
        std::env::var_os("WGD_REQUIRE_CLAB_SCHEMA").is_none_or(|value| value != "1"),
        "WGD_REQUIRE_CLAB_SCHEMA=1, but {why}"
    );
    // Written to the terminal itself: cargo test hides what a passing
    // test prints with eprintln!.
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED: {test} did not run: {why}"
    );
    None
}

#[test]
fn every_lab_file_is_a_valid_containerlab_file() {
    let Some(path) = schema_path("every_lab_file_is_a_valid_containerlab_file") else {
        return;
    };
    let schema = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "containerlab's schema {}: {error} (set CLAB_SCHEMA to its path)",
            path.display()
        )
    });
    let schema: serde_json::Value = serde_json::from_str(&schema).expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");

    let mut files: Vec<PathBuf> = std::fs::read_dir(labs_dir())
        .expect("labs/ lists")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(".clab.yml") || name.ends_with(".clab.yaml"))
        })
        .collect();
    files.sort();
    assert!(
        files.iter().any(|file| file.ends_with("seed.clab.yml")),
        "no lab files found in {}",
        labs_dir().display()
    );
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        let instance: serde_json::Value = match serde_norway::from_str(&text) {
            Ok(instance) => instance,
            Err(error) => {
                problems.push(format!("{}: not YAML: {error}", file.display()));
                continue;
            }
        };
        for error in validator.iter_errors(&instance) {
            problems.push(format!(
                "{}: at {}: {error}",
                file.display(),
                error.instance_path()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!("{} lab files valid against {}", files.len(), path.display());
}

#[test]
fn the_schema_catches_what_containerlab_refuses() {
    // The test above would pass with a schema that accepts anything.
    let Some(path) = schema_path("the_schema_catches_what_containerlab_refuses") else {
        return;
    };
    let Ok(schema) = std::fs::read_to_string(&path) else {
        panic!(
            "containerlab's schema {}: missing (set CLAB_SCHEMA)",
            path.display()
        );
    };
    let schema: serde_json::Value = serde_json::from_str(&schema).expect("JSON");
    let validator = jsonschema::validator_for(&schema).expect("compiles");
    let bad: serde_json::Value =
        serde_norway::from_str("name: x\ntopology:\n  nodes:\n    a:\n      kind: no-such-kind\n")
            .expect("YAML");
    assert!(!validator.is_valid(&bad));
}
