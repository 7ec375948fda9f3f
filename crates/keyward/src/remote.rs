//! Talking to a running Keyward over HTTP, as `keyward scan --server` and `keyward mcp` do:
//! where the server is, and the credential to present to it.
//!
//! The credential comes from the environment or a file, never from the command line, where
//! other users of the machine could read it in the process list. It travels only over TLS,
//! or to this machine, and never on to wherever a redirect would send it.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use zeroize::Zeroizing;

/// A Keyward server and a client to reach it.
#[derive(Debug, Clone)]
pub struct Remote {
    /// Its base URL, without a trailing `/`.
    pub base: String,
    /// A client that follows no redirect and refuses plain HTTP to another machine.
    pub client: reqwest::Client,
}

impl Remote {
    /// The server at `base`: an `https` URL, or `http` to this machine only.
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let parsed = reqwest::Url::parse(base).with_context(|| format!("server URL {base}"))?;
        let local = match parsed.host() {
            Some(url::Host::Domain(name)) => name == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && local) {
            bail!("the server URL must be https (http only to this machine): {base}");
        }
        // A password there would be printed in messages, and a credential has its place.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            bail!("the server URL must not hold a user or password: give the key as a key");
        }
        keyward_delivery::install_tls_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
        })
    }

    /// `path` on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The API key (or access token) to present: the contents of `file` when given (surrounding
/// whitespace dropped), else `KEYWARD_API_KEY`. `needs` says, in an error, what it is for.
pub fn credential(file: Option<&Path>, needs: &str) -> anyhow::Result<Zeroizing<String>> {
    let text = match file {
        Some(path) => Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the key file {}", path.display()))?,
        ),
        None => Zeroizing::new(
            std::env::var("KEYWARD_API_KEY")
                .with_context(|| format!("{needs} in KEYWARD_API_KEY or a key file"))?,
        ),
    };
    let key = text.trim();
    if key.is_empty() {
        bail!("{needs}: the key given is empty");
    }
    // An HTTP header cannot hold a line break or another control character.
    if key.chars().any(char::is_control) {
        bail!("{needs}: the key given has a control character in it");
    }
    Ok(Zeroizing::new(key.to_owned()))
}
