//! The committed OpenAPI document (crates/api/openapi.json, served at `GET /openapi.json`) is the
//! one the wire types generate: a change to a type that is not carried into the document fails
//! here, with the command that regenerates it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_api::openapi::{COMMITTED, render};

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = render().unwrap();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        std::fs::write(path, &generated).unwrap();
        return;
    }
    if generated != COMMITTED {
        let line = generated
            .lines()
            .zip(COMMITTED.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || generated.lines().count().min(COMMITTED.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "crates/api/openapi.json is not what the wire types generate (first difference at \
             line {line}); regenerate it with UPDATE_OPENAPI=1 cargo test -p countersign-api \
             --test openapi, and review the difference"
        );
    }
}

#[test]
fn every_schema_is_typed() {
    let document: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    // A bare {"type": "object"} says nothing a client or an SDK generator can use.
    fn bare(value: &serde_json::Value, path: &str, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if map.get("type") == Some(&serde_json::json!("object"))
                    && !map.contains_key("properties")
                    && !map.contains_key("additionalProperties")
                {
                    found.push(path.to_owned());
                }
                for (key, inner) in map {
                    bare(inner, &format!("{path}/{key}"), found);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    bare(inner, &format!("{path}/{i}"), found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    bare(&document, "", &mut found);
    assert!(found.is_empty(), "untyped object schemas at {found:?}");
}
