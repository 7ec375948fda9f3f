"""A webhook receiver on 127.0.0.1 whose signatures are checked by the `standardwebhooks`
package (Standard Webhooks' own Python library), for the end-to-end webhook tests.

It prints `LISTENING <port>` once it listens. The test drives it over HTTP:

- `POST /_config` `{"path", "secret", "answers"}`: messages to `path` are checked with
  `secret` (`whsec_…`), and answered with the statuses in `answers`, one per message,
  then 200.
- `GET /_received`: every message so far, in arrival order: `{"path", "verified", "id",
  "type", "status", "payload"}`.

Any other path is a webhook target: a message whose signature does not verify is recorded
with `verified: false` and answered 400. Stops at the end of its standard input.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

LOCK = threading.Lock()
CONFIG = {}
RECEIVED = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        return self.rfile.read(int(self.headers.get("content-length", "0")))

    def do_GET(self):
        if self.path == "/_received":
            with LOCK:
                self.reply(200, json.dumps(RECEIVED).encode())
        else:
            self.reply(404)

    def do_POST(self):
        raw = self.body()
        if self.path == "/_config":
            config = json.loads(raw)
            with LOCK:
                CONFIG[config["path"]] = {
                    "secret": config["secret"],
                    "answers": list(config.get("answers", [])),
                }
            return self.reply(204)
        with LOCK:
            config = CONFIG.get(self.path)
        record = {"path": self.path, "verified": False, "id": self.headers.get("webhook-id")}
        try:
            if config is None:
                raise WebhookVerificationError("no secret for this path")
            payload = Webhook(config["secret"]).verify(raw, dict(self.headers.items()))
        except WebhookVerificationError as error:
            record["error"] = str(error)
            with LOCK:
                RECEIVED.append(record)
            return self.reply(400)
        with LOCK:
            status = config["answers"].pop(0) if config["answers"] else 200
            record.update(verified=True, type=payload["type"], status=status, payload=payload)
            RECEIVED.append(record)
        self.reply(status, b'{"received": true}')


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"LISTENING {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
