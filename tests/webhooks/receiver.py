"""A real HTTP receiver on 127.0.0.1 for webhook tests: records each POST
(headers and raw body) and answers with the statuses it is given in turn."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, statuses=(200,)):
        self.statuses = list(statuses)      # answered in turn; the last one from then on
        self.received: list[tuple[dict, bytes]] = []
        self.got = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.got:
                    outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = outer.statuses[min(len(outer.received), len(outer.statuses)) - 1]
                    outer.got.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        with self.got:
            return self.got.wait_for(lambda: len(self.received) >= count, timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
