"""/api/v1/webhooks: the caller's own webhooks, the secret only in the answer
to POST, URLs checked, another user's webhook not found, the delivery log."""
from __future__ import annotations


def test_webhooks_api(api):
    r = api.alice.post("/api/v1/webhooks", json={"url": "https://hooks.example/a", "events": ["reply", "bounce"]})
    assert r.status_code == 201, r.text
    hook = r.json()
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["reply", "bounce"]
    listed = api.alice.get("/api/v1/webhooks").json()
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    assert api.alice.get(f"/api/v1/webhooks/{hook['id']}").json()["url"] == "https://hooks.example/a"
    assert api.alice.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json() == []
    for bad in ({"url": "javascript:alert(1)", "events": ["reply"]}, {"url": "https://x.example/", "events": []},
                {"url": "https://x.example/", "events": ["nope"]}, {"url": "https://x.example/\nX: y", "events": ["reply"]},
                {"url": "", "events": ["reply"]}, {"events": ["reply"]}, {"url": "ftp://x.example/", "events": ["reply"]}):
        r = api.alice.post("/api/v1/webhooks", json=bad)
        assert r.status_code in (400, 422) and r.json()["error"], bad
    # bob: not found, can't delete
    assert api.bob.get("/api/v1/webhooks").json() == []
    for method, url in (("GET", f"/api/v1/webhooks/{hook['id']}"), ("GET", f"/api/v1/webhooks/{hook['id']}/deliveries"),
                        ("DELETE", f"/api/v1/webhooks/{hook['id']}")):
        assert api.bob.request(method, url).status_code == 404, url
    assert api.anonymous.get("/api/v1/webhooks").status_code == 401
    assert api.alice.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert api.alice.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404
