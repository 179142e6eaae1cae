//! Where the broker is and who we are to it: `--server`/`--token`, or `COUNTERSIGN_SERVER` and
//! `COUNTERSIGN_TOKEN`, shared by every command that talks to the broker.

use anyhow::bail;
use clap::Args;
use countersign_client::Client;

/// The broker `countersign serve` listens on by default.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8750";

#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The Countersign broker's address.
    #[arg(long, env = "COUNTERSIGN_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    pub server: String,
    /// The API token that names you (or your agent) to the broker.
    #[arg(
        long,
        env = "COUNTERSIGN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

impl Connection {
    /// A client for the broker; fails if no token was given or the address is not usable.
    pub fn client(&self) -> anyhow::Result<Client> {
        let Some(token) = self.token.as_deref().filter(|t| !t.trim().is_empty()) else {
            bail!("no API token: set COUNTERSIGN_TOKEN or pass --token");
        };
        Ok(Client::new(&self.server, token)?)
    }
}
