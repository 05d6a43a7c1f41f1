//! The benchmark runner (`shardfusion-bench`) is built in its own issue; this crate holds its
//! place in the workspace.
