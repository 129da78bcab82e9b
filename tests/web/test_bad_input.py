"""Whatever a client sends gets a 4xx with a JSON error saying what is wrong:
never a 5xx, never a crash."""
from __future__ import annotations

import json
import socket

import pytest

MiB = 1024 * 1024


def _is_clear_4xx(r, *codes):
    assert r.status_code in (codes or range(400, 500)), (r.status_code, r.text[:300])
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    return body


@pytest.mark.parametrize("content", [b"{", b"[1, 2]", b"null", b'"text"', b"\xff\xfe garbage", b"{}" * 1000,
                                     b'{"name": 5, "emails": "x"}', b'{"emails": ["not-an-address"]}',
                                     b'{"name": "x", "unknown_field": 1}', b'{"tags": [""]}',
                                     b'{"name": "a\\u0000b"}', b'{"name": "\\ud800"}',
                                     b'{"notes": "' + b"x" * 200_000 + b'"}'])
def test_garbage_contact_bodies_are_422(api, content):
    r = api.alice.post("/api/v1/contacts", content=content, headers={"Content-Type": "application/json"})
    body = _is_clear_4xx(r, 422)
    assert body["error"].startswith("invalid request")


def test_validation_errors_say_where(api):
    r = api.alice.post("/api/v1/contacts", json={"emails": ["ann@corp.example", "nope"]})
    body = _is_clear_4xx(r, 422)
    assert "body.emails.1" in body["error"] and "not an email address" in body["error"]


@pytest.mark.parametrize("path", ["/api/v1/contacts/0", "/api/v1/contacts/-1", "/api/v1/contacts/abc",
                                  "/api/v1/contacts/99999999999999999999999999", "/api/v1/activities/1.5",
                                  "/api/v1/contacts?limit=0", "/api/v1/contacts?limit=1001",
                                  "/api/v1/contacts?offset=-1", "/api/v1/contacts?company_id=x",
                                  "/api/v1/contacts?email=a%00b", "/api/v1/activities?kind=spam",
                                  "/api/v1/activities?since=yesterday", "/api/v1/contacts?q=" + "x" * 600,
                                  "/api/v1/documents", "/api/v1/documents?q="])
def test_bad_ids_and_parameters_are_4xx(api, path):
    _is_clear_4xx(api.alice.get(path))


def test_since_after_until_is_400(api):
    r = api.alice.get("/api/v1/activities", params={"since": "2026-02-01", "until": "2026-01-01T00:00:00Z"})
    _is_clear_4xx(r, 400)
    assert api.alice.get("/api/v1/activities", params={"since": "2026-01-01"}).status_code == 200


def _raw_post(api, path: str, headers: str, body: bytes = b"") -> tuple[int, dict]:
    """POST over a plain socket: the headers (and as much body as given), then
    the answer, without ever sending the rest (a client that would keep
    sending after the 413 could meet a closed connection first)."""
    from urllib.parse import urlsplit
    url = urlsplit(api.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {api.alice_token}\r\n"
                     f"Content-Type: application/json\r\n{headers}\r\n".encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(rest[:_length(answer)])


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def test_a_body_over_the_limit_is_413_before_it_is_read(api):
    status, body = _raw_post(api, "/api/v1/contacts", f"Content-Length: {MiB + 10}\r\n")
    assert status == 413 and "1 MiB" in body["error"]
    # Send, documents and classify take whole messages and files: 25 MiB.
    status, body = _raw_post(api, "/api/v1/send", f"Content-Length: {26 * MiB}\r\n")
    assert status == 413 and "25 MiB" in body["error"]


def test_a_chunked_body_over_the_limit_is_cut_off_with_413(api):
    chunk = b"y" * 65536
    body = b'11\r\n{"notes": "yyyyyy\r\n' + b"".join(b"10000\r\n" + chunk + b"\r\n" for _ in range(17))
    status, answer = _raw_post(api, "/api/v1/contacts", "Transfer-Encoding: chunked\r\n", body)   # 1.06 MiB so far
    assert status == 413 and "1 MiB" in answer["error"]


def test_send_and_documents_take_more_than_1_mib(api):
    big = b"z" * (2 * MiB)      # over the 1 MiB of JSON routes, well under 25 MiB
    eve = api.alice.post("/api/v1/contacts", json={"name": "Big"}).json()
    r = api.alice.post(f"/api/v1/contacts/{eve['id']}/documents", files={"file": ("big.txt", big, "text/plain")})
    assert r.status_code == 201, r.text


def test_wrong_content_type_or_method_is_4xx(api):
    _is_clear_4xx(api.alice.post("/api/v1/contacts", content=b"name=x",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"}))
    _is_clear_4xx(api.alice.put("/api/v1/contacts/1", json={}), 405)
    _is_clear_4xx(api.alice.get("/api/v1/no-such-thing"), 404)
    _is_clear_4xx(api.alice.post(f"/api/v1/contacts/{1}/documents", content=b"--x\r\nnot multipart",
                                 headers={"Content-Type": "multipart/form-data; boundary=x"}))


def test_merge_and_send_bodies_are_checked(api):
    _is_clear_4xx(api.alice.post("/api/v1/contacts/1/merge", json={"other_id": "two"}), 422)
    _is_clear_4xx(api.alice.post("/api/v1/contacts/1/merge", json={"other_id": 2**70}), 422)
    _is_clear_4xx(api.alice.post("/api/v1/send", json={"account_id": 1, "to": []}), 422)
    _is_clear_4xx(api.alice.post("/api/v1/send", content=json.dumps({"account_id": 1, "to": ["a@b.example"],
                                                                     "bcc": ["x@y.example"] * 501}),
                                 headers={"Content-Type": "application/json"}), 422)


def test_patch_with_null_for_a_flag_or_a_list_is_422(api):
    # (found by schemathesis: null went through to the CRM, and its answer failed the response model: a 500)
    ann = api.alice.post("/api/v1/contacts", json={"name": "Nul"}).json()
    for field in ("opted_out", "tags"):
        r = api.alice.patch(f"/api/v1/contacts/{ann['id']}", json={field: None})
        assert f"body.{field}" in _is_clear_4xx(r, 422)["error"]
    assert api.alice.patch(f"/api/v1/contacts/{ann['id']}", json={"opted_out": True}).json()["opted_out"] is True
