//! Keyward in front of an API: Debian's nginx with `auth_request` to `/v1/authorize`,
//! before a small upstream on loopback; the required scopes come from the location, as
//! `X-Keyward-Required-Scopes`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use keyward_store::testing::skip_or_fail;

use crate::gateway::{Proxy, Setting, binary};

/// The nginx configuration of the test; `docs/proxies.md` shows the same, annotated.
fn nginx_conf(dir: &Path, listen: u16, keyward: &str) -> String {
    let dir = dir.display();
    let keyward = keyward.trim_start_matches("http://");
    format!(
        r#"
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{listen};

    location = /_keyward {{
      internal;
      proxy_pass http://{keyward}/v1/authorize;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Keyward-Required-Scopes $keyward_required_scopes;
      # auth_request passes only 401 and 403 on: carry a 429 through as a 403.
      proxy_intercept_errors on;
      error_page 429 = @keyward_throttled;
    }}
    location @keyward_throttled {{ return 403; }}
    location @keyward_denied {{
      if ($keyward_retry_after) {{ add_header Retry-After $keyward_retry_after always; return 429; }}
      return 403;
    }}

    location /v1/dns/ {{
      set $keyward_required_scopes "dns:write";
      include {dir}/protected.conf;
    }}
    location / {{
      set $keyward_required_scopes "";
      include {dir}/protected.conf;
    }}
  }}
}}
"#
    )
}

fn protected_conf(upstream: SocketAddr) -> String {
    format!(
        r#"
auth_request /_keyward;
auth_request_set $keyward_key_id $upstream_http_x_keyward_key_id;
auth_request_set $keyward_organization $upstream_http_x_keyward_organization;
auth_request_set $keyward_environment $upstream_http_x_keyward_environment;
auth_request_set $keyward_scopes $upstream_http_x_keyward_scopes;
auth_request_set $keyward_owner $upstream_http_x_keyward_owner_id;
auth_request_set $keyward_retry_after $upstream_http_retry_after;
error_page 403 = @keyward_denied;
proxy_set_header X-Keyward-Key-Id $keyward_key_id;
proxy_set_header X-Keyward-Organization $keyward_organization;
proxy_set_header X-Keyward-Environment $keyward_environment;
proxy_set_header X-Keyward-Scopes $keyward_scopes;
proxy_set_header X-Keyward-Owner-Id $keyward_owner;
proxy_set_header X-Api-Key "";
proxy_set_header Authorization "";
proxy_pass http://{upstream};
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_auth_request_admits_good_keys_and_refuses_the_rest() {
    let Some(nginx) = binary(&["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"])
    else {
        skip_or_fail("nginx", "no nginx binary (apt-get install nginx)");
        return;
    };
    let setting =
        Setting::start("trusted_proxies = [\"127.0.0.1\"]\n[brute_force]\nthreshold = 5\n").await;
    let work = setting.work.path();
    std::fs::write(
        work.join("protected.conf"),
        protected_conf(setting.upstream),
    )
    .unwrap();
    let conf = work.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(work, setting.port, &setting.keyward.base)).unwrap();
    let _nginx = Proxy(
        Command::new(nginx)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    setting.check_proxy("nginx", &work.join("error.log")).await;
}
