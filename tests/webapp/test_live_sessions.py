"""Login sessions kept in the database: after `posthouse serve` is stopped
and started again, the same cookie still opens the pages; after logout it
doesn't, before or after a restart."""
from __future__ import annotations

import re
from contextlib import closing

import httpx

from .conftest import serve_again, start_server, stop_server
from .test_pages import http_session


def test_a_restart_keeps_users_logged_in(tmp_path):
    server, proc, log = start_server(str(tmp_path))
    try:
        client, _csrf = http_session(server, "alice")
        other, other_csrf = http_session(server, "bob")
        with closing(client), closing(other):
            assert client.get("/contacts").status_code == 200
            assert other.post("/logout", data={"csrf": other_csrf}).status_code == 303
            bobs = other.cookies.get("posthouse_session")
            stop_server(proc, log)
            proc, log = serve_again(server)
            page = client.get("/contacts")
            assert page.status_code == 200 and "alice" in page.text      # still logged in
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
            with httpx.Client(base_url=server.url, timeout=30) as forged:
                if bobs:
                    forged.cookies.set("posthouse_session", bobs)
                assert forged.get("/contacts").status_code == 303         # logged out stays out
            alices = client.cookies.get("posthouse_session")
            assert client.post("/logout", data={"csrf": csrf}).status_code == 303
            with httpx.Client(base_url=server.url, timeout=30) as replay:
                replay.cookies.set("posthouse_session", alices)
                assert replay.get("/contacts").status_code == 303          # logout ended it
    finally:
        stop_server(proc, log)
    assert "Traceback" not in open(log.name).read()
