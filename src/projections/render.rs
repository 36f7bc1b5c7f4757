//! Rendering helpers.
