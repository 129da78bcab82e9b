"""/api/v1/campaigns over the real CRM side (crmside + build_app): make a
campaign from the caller's own address only, send it (its owner only, once),
read its counts; every user sees every campaign."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from posthouse.config import Config
    from posthouse.crmside import open_crm_side
    from posthouse.web.services import build_app
    from posthouse.web.tokens import TokenStore

    from .conftest import ServedApp
    config = Config(data_dir=str(tmp_path_factory.mktemp("campaignsapi")), relay_host="127.0.0.1")
    side = open_crm_side(config, local_users=lambda: ["alice", "bob"])
    side.accounts.add(owner="alice", imap_host="imap.example.net", imap_port=993, login="alice@example.net",
                      addresses=["alice@example.net"], secret={"password": "x"})
    for n in range(3):
        side.crm.add_contact(name=f"P{n} Person", emails=[f"p{n}@people.example"], tags=["t"])
    app = build_app(config, side)
    served = ServedApp(app)
    store = TokenStore(side.engine)
    served.tokens = {u: store.create(u, "tests")[1] for u in ("alice", "bob")}
    served.side = side
    yield served
    served.stop()
    side.close()


def _client(served, user):
    import httpx
    return httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.tokens[user]}"}, timeout=30)


def test_make_send_and_read_a_campaign(served):
    body = {"name": "N", "tag": "t", "from_address": "Alice@example.net", "subject": "Hi {{first_name}}", "body": "B"}
    with _client(served, "alice") as alice, _client(served, "bob") as bob:
        bad = alice.post("/api/v1/campaigns", json={**body, "body": "Hi {{nick}}"})
        assert bad.status_code == 400 and "{{nick}}" in bad.json()["error"]
        assert bob.post("/api/v1/campaigns", json=body).status_code == 400      # not bob's address
        made = alice.post("/api/v1/campaigns", json=body)
        assert made.status_code == 201, made.text
        cid = made.json()["id"]
        assert made.json()["state"] == "draft" and made.json()["recipients"] == 3
        assert [c["id"] for c in bob.get("/api/v1/campaigns").json()] == [cid]      # the team's view
        assert bob.post(f"/api/v1/campaigns/{cid}/start").status_code == 403
        assert alice.post(f"/api/v1/campaigns/{cid}/start").json()["state"] == "sending"
        assert alice.post(f"/api/v1/campaigns/{cid}/start").status_code == 409
        detail = bob.get(f"/api/v1/campaigns/{cid}").json()
        assert detail["summary"]["queued"] == 3 and detail["results"] == []
        assert bob.get("/api/v1/campaigns/999999").status_code == 404
