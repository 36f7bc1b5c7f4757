//! The published contract under `schemas/` and the Rust types never drift apart. One test binary
//! (every test binary links the whole library), one module per concern:
//!
//! - `published`: the checked-in files equal what the types generate (`UPDATE_SCHEMAS=1 cargo
//!   test --test schemas` rewrites them), for every type and version, as valid draft 2020-12;
//! - `round_trip`: every value the types and the demo generator produce validates against the
//!   interchange line schema and its event's schema, and decodes back to the same value;
//! - `validation`: invalid values are rejected both by the schema validator and by typed
//!   deserialization, with errors that name the field;
//! - `versions`: the version 1 `ContractSigned` line validates and is upcast to version 2;
//! - `fast_path`: the importer's fast path and the full path agree on every line;
//! - `fuzz_lines`: differential fuzzing of the two paths on arbitrary bytes and mutated lines.
//!
//! `generators` holds the one set of proptest strategies and sample lines they all use;
//! `validators` the compiled schemas and the schema-free typed decoding.

mod generators;
mod validators;

mod fast_path;
mod fuzz_lines;
mod published;
mod round_trip;
mod validation;
mod versions;
