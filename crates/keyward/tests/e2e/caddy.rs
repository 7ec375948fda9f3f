//! Keyward in front of an API: Debian's Caddy with `forward_auth` to `/v1/authorize`,
//! before a small upstream on loopback. Caddy sends the original request as
//! `X-Forwarded-Method` and `X-Forwarded-Uri`, as Traefik's ForwardAuth does, so this is
//! also the test of `docs/proxies.md`'s Traefik settings: Keyward reads those headers and
//! takes the required scopes from `[[authorize.routes]]`; Caddy relays every refusal (401,
//! 403, 429 with its headers) to the client as Keyward answered it.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use keyward_store::testing::skip_or_fail;

use crate::gateway::{Proxy, Setting, binary};

/// Keyward's configuration behind a proxy that speaks Traefik's headers.
const KEYWARD_CONFIG: &str = r#"
trusted_proxies = ["127.0.0.1"]
[brute_force]
threshold = 5
[authorize]
uri_header = "x-forwarded-uri"
method_header = "x-forwarded-method"
[[authorize.routes]]
path = "/v1/dns/**"
scopes = ["dns:write"]
[[authorize.routes]]
path = "/**"
scopes = []
"#;

/// The Caddyfile of the test; `docs/proxies.md` shows the same.
fn caddyfile(listen: u16, keyward: &str, upstream: SocketAddr) -> String {
    let keyward = keyward.trim_start_matches("http://");
    format!(
        r#"
{{
	admin off
}}
http://127.0.0.1:{listen} {{
	bind 127.0.0.1
	route {{
		request_header -X-Keyward-*
		forward_auth {keyward} {{
			uri /v1/authorize
			copy_headers X-Keyward-Key-Id X-Keyward-Organization X-Keyward-Environment X-Keyward-Scopes X-Keyward-Owner-Id
		}}
		reverse_proxy {upstream} {{
			header_up -X-Api-Key
			header_up -Authorization
		}}
	}}
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn caddy_forward_auth_admits_good_keys_and_refuses_the_rest() {
    let Some(caddy) = binary(&["/usr/bin/caddy", "/usr/local/bin/caddy"]) else {
        skip_or_fail("Caddy", "no caddy binary (apt-get install caddy)");
        return;
    };
    let setting = Setting::start(KEYWARD_CONFIG).await;
    let work = setting.work.path();
    let caddyfile_path = work.join("Caddyfile");
    let config = caddyfile(setting.port, &setting.keyward.base, setting.upstream);
    std::fs::write(&caddyfile_path, config).unwrap();
    let log = work.join("caddy.log");
    let _caddy = Proxy(
        Command::new(caddy)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&caddyfile_path)
            // Caddy keeps its state under these; none of it outside the test's folder.
            .env("HOME", work)
            .env("XDG_DATA_HOME", work)
            .env("XDG_CONFIG_HOME", work)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    setting.check_proxy("Caddy", &log).await;
}
