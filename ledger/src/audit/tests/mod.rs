//! Tests for the audit module: published vectors, and properties checked
//! against the naive definitions in `reference`.

mod checkpoint;
mod merkle_props;
mod multiproof;
mod note;
mod reference;
mod vectors;
