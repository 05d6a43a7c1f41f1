//! `shardfusion._native`: the Rust half of the `shardfusion` Python package.
//!
//! The Python package (`python/python/shardfusion/`) holds the user-facing API; this module
//! provides what needs Rust:
//! - [`session::NativeSession`]: a Flight SQL connection that runs statements and bulk ingest;
//! - [`stream::NativeStream`]: a result arriving batch by batch, exported to pyarrow without
//!   copies;
//! - [`local_cluster::NativeLocalCluster`]: a coordinator and workers inside this process;
//! - [`errors`]: the exception classes and how gRPC statuses map onto them;
//! - [`runtime`]: the Tokio runtime everything runs on, and waiting with the GIL released
//!   while still noticing Ctrl-C.

use pyo3::prelude::*;

mod errors;
mod local_cluster;
mod runtime;
mod session;
mod stream;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<session::NativeSession>()?;
    m.add_class::<stream::NativeStream>()?;
    m.add_class::<local_cluster::NativeLocalCluster>()?;
    Ok(())
}
