//! [`NativeLocalCluster`]: a coordinator and workers running inside the Python process, on
//! free loopback ports (see `shardfusion_embedded::LocalCluster`).

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;
use shardfusion_embedded::{LocalCluster, LocalClusterOptions};

use crate::errors::OperationalError;
use crate::runtime::wait;

/// A running in-process cluster; `shutdown` (or dropping it) stops every server.
#[pyclass(module = "shardfusion._native")]
pub struct NativeLocalCluster {
    url: String,
    data_dir: String,
    temporary: bool,
    cluster: Mutex<Option<LocalCluster>>,
}

#[pymethods]
impl NativeLocalCluster {
    #[new]
    #[pyo3(signature = (workers = 2, data_dir = None))]
    fn new(py: Python<'_>, workers: usize, data_dir: Option<PathBuf>) -> PyResult<Self> {
        let mut options = LocalClusterOptions::new(workers);
        options.data_dir = data_dir;
        options.config = datafusion::prelude::SessionConfig::from_env()
            .map_err(|e| OperationalError::new_err(e.to_string()))?;
        let cluster = wait(py, LocalCluster::start(options))?
            .map_err(|e| OperationalError::new_err(e.to_string()))?;
        Ok(Self {
            url: cluster.url().to_string(),
            data_dir: cluster.data_dir().display().to_string(),
            temporary: cluster.is_temporary(),
            cluster: Mutex::new(Some(cluster)),
        })
    }

    /// The coordinator's Flight SQL URL.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    #[getter]
    fn data_dir(&self) -> &str {
        &self.data_dir
    }

    /// Whether the data directory is removed when the cluster stops.
    #[getter]
    fn temporary(&self) -> bool {
        self.temporary
    }

    #[getter]
    fn running(&self) -> bool {
        self.cluster.lock().map(|c| c.is_some()).unwrap_or(false)
    }

    /// Stops the coordinator and the workers; a second call does nothing.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let cluster = self.cluster.lock().ok().and_then(|mut c| c.take());
        if let Some(cluster) = cluster {
            wait(py, cluster.shutdown())?;
        }
        Ok(())
    }
}
