"""Stand-in servers for the accounts tests (real sockets on 127.0.0.1)."""
from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class TokenEndpoint:
    """A stand-in OAuth2 token endpoint: refresh_token grants, counted."""

    def __init__(self):
        self.requests: list[dict] = []
        self.valid_refresh = {"rt-1"}
        self.rotate_to: str | None = None
        self.expires_in = 3600
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = dict(urllib.parse.parse_qsl(body))
                endpoint.requests.append(form)
                if form.get("grant_type") != "refresh_token" or form.get("client_id") != "cid":
                    return self._send(400, {"error": "invalid_client"})
                if form.get("refresh_token") not in endpoint.valid_refresh:
                    return self._send(400, {"error": "invalid_grant", "error_description": "Token has been revoked."})
                answer = {"access_token": f"at-{len(endpoint.requests)}", "token_type": "Bearer",
                          "expires_in": endpoint.expires_in}
                if endpoint.rotate_to:
                    answer["refresh_token"] = endpoint.rotate_to
                    endpoint.valid_refresh = {endpoint.rotate_to}
                self._send(200, answer)

            def _send(self, status, data):
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
