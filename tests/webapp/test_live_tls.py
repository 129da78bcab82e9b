"""`[web] tls = true`: the web app over https with the certificate IMAP uses
(here the one serve made in data_dir), checked against that file by httpx on
loopback; the session and login cookies are Secure; plain http gets nowhere."""
from __future__ import annotations

import os
import re
import ssl

import httpx
import pytest

from .conftest import PASSWORDS, start_server, stop_server


def test_https_with_the_imap_certificate_and_secure_cookies(tmp_path):
    server, proc, log = start_server(str(tmp_path), web="tls = true\n")
    try:
        url = server.url.replace("http://", "https://")
        cert = os.path.join(str(tmp_path), "data", "tls", "cert.pem")
        assert "web listening on https://" in open(log.name).read()
        trust = ssl.create_default_context(cafile=cert)
        with httpx.Client(base_url=url, timeout=30, verify=trust) as client:
            form = client.get("/login")
            assert form.status_code == 200
            assert "secure" in form.headers["set-cookie"].lower()
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)[1]
            r = client.post("/login", data={"name": "alice", "password": PASSWORDS["alice"], "csrf": token,
                                            "next": "/contacts"}, headers={"Origin": url})
            assert r.status_code == 303, r.text
            session_cookie = [c for c in r.headers.get_list("set-cookie") if c.startswith("posthouse_session=")]
            assert session_cookie and "; secure" in session_cookie[0].lower() and "httponly" in session_cookie[0].lower()
            assert client.get("/contacts").status_code == 200
        with httpx.Client(base_url=url, timeout=30) as untrusting:      # (the system's CAs don't know it)
            with pytest.raises(httpx.ConnectError):
                untrusting.get("/login")
        with httpx.Client(base_url=server.url, timeout=10) as plain:
            with pytest.raises(httpx.HTTPError):
                plain.get("/login")
    finally:
        stop_server(proc, log)
    assert "Traceback" not in open(log.name).read()
