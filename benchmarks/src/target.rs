//! [`Target`]: the cluster a benchmark measures — an embedded one it starts itself, or an
//! existing one given by `--url`.

use crate::client::TestClient;
use crate::cluster::TestCluster;

/// Where the benchmark's statements go.
pub enum Target {
    Embedded(Box<TestCluster>),
    External(String),
}

impl Target {
    /// Connects to `url` if given, else starts an embedded cluster with `workers` workers.
    pub async fn start(url: Option<String>, workers: usize) -> Result<Self, String> {
        match url {
            Some(url) => {
                // Fail early, with the URL in the message, if nothing answers there.
                TestClient::try_connect(&url).await?;
                Ok(Self::External(url))
            }
            None => Ok(Self::Embedded(Box::new(TestCluster::start(workers).await))),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Embedded(cluster) => &cluster.url,
            Self::External(url) => url,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Embedded(_) => "embedded cluster".into(),
            Self::External(url) => format!("cluster at {url}"),
        }
    }

    pub async fn client(&self) -> Result<TestClient, String> {
        TestClient::try_connect(self.url()).await
    }

    pub async fn shutdown(self) {
        if let Self::Embedded(cluster) = self {
            cluster.shutdown().await;
        }
    }
}
