//! `keyward scan`: Keyward secrets in files, found by their format and checksum
//! ([`keyward_core::secret::find_secrets`]), for a pre-commit hook or a CI step.
//!
//! Paths are files, directories (walked recursively, symbolic links not followed, `.git`
//! folders left out) or `-` for standard input. A finding names where it is, its kind, its
//! prefix and its last four characters: never the whole secret.

use std::io::Read;
use std::path::{Path, PathBuf};

use keyward_core::secret::{SecretKind, find_secrets};
use serde::Serialize;

/// A secret found in a file.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The file (`-` for standard input).
    pub path: String,
    /// The line, from 1.
    pub line: usize,
    /// `api_key` or `client_secret`.
    pub kind: &'static str,
    /// `{prefix}_{marker}_`.
    pub prefix: String,
    /// The last four characters.
    pub hint: String,
    /// The secret itself, to look up; never printed or serialized.
    #[serde(skip)]
    pub secret: zeroize::Zeroizing<String>,
}

/// Asks the Keyward at `base` what each secret is (`POST /v1/keys/lookup`, a hundred at a
/// time), with the API key in `KEYWARD_API_KEY`: one `{state, kind, key_id}` per secret, in
/// order.
pub async fn look_up(base: &str, secrets: &[&str]) -> anyhow::Result<Vec<serde_json::Value>> {
    use anyhow::Context;
    let key = crate::remote::credential(None, "--server needs an API key with keys:read")?;
    let remote = crate::remote::Remote::new(base)?;
    let client = &remote.client;
    let url = remote.url("/v1/keys/lookup");
    let mut results = Vec::with_capacity(secrets.len());
    for batch in secrets.chunks(100) {
        let response = client
            .post(&url)
            .header("x-api-key", key.as_str())
            .json(&serde_json::json!({ "secrets": batch }))
            .send()
            .await
            .with_context(|| format!("asking {url}"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            let detail = body["detail"].as_str().unwrap_or("no detail");
            anyhow::bail!("{url} answered {status}: {detail}");
        }
        let data = body["data"]
            .as_array()
            .filter(|data| data.len() == batch.len())
            .with_context(|| format!("{url} answered something else than one result a secret"))?;
        results.extend(data.iter().cloned());
    }
    Ok(results)
}

/// What a scan found, and the paths it could not read (each with why).
#[derive(Debug, Default)]
pub struct Scan {
    /// The secrets, in the order met.
    pub findings: Vec<Finding>,
    /// Paths that could not be read.
    pub errors: Vec<String>,
}

/// Scans `paths`.
pub fn scan(paths: &[PathBuf]) -> Scan {
    let mut scan = Scan::default();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            match std::io::stdin().read_to_end(&mut bytes) {
                Ok(_) => scan.text("-", &bytes),
                Err(error) => scan.errors.push(format!("standard input: {error}")),
            }
        } else {
            scan.path(path);
        }
    }
    scan
}

impl Scan {
    fn path(&mut self, path: &Path) {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(error) => return self.errors.push(format!("{}: {error}", path.display())),
        };
        if meta.is_dir() {
            let entries = match std::fs::read_dir(path) {
                Ok(entries) => entries,
                Err(error) => return self.errors.push(format!("{}: {error}", path.display())),
            };
            let mut children: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
            // A stable order, so that two scans of one tree print the same.
            children.sort();
            for child in children {
                if child.file_name().is_some_and(|name| name == ".git") {
                    continue;
                }
                self.path(&child);
            }
        } else if meta.is_file() {
            match std::fs::read(path) {
                Ok(bytes) => self.text(&path.display().to_string(), &bytes),
                Err(error) => self.errors.push(format!("{}: {error}", path.display())),
            }
        }
        // Symbolic links and special files are not followed: a link may point anywhere,
        // and a loop of them would never end.
    }

    fn text(&mut self, path: &str, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        for (number, line) in text.lines().enumerate() {
            for found in find_secrets(line) {
                self.findings.push(Finding {
                    path: path.to_owned(),
                    line: number + 1,
                    kind: match found.kind {
                        SecretKind::ApiKey(_) => "api_key",
                        SecretKind::ClientSecret => "client_secret",
                    },
                    prefix: found.display_prefix().to_owned(),
                    hint: found.hint().to_owned(),
                    secret: zeroize::Zeroizing::new(found.text.to_owned()),
                });
            }
        }
    }
}
