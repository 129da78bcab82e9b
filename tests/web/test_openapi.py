"""The OpenAPI document: valid JSON, every route in it, the bearer scheme and
the response shapes named in it; and (where schemathesis is installed) a
bounded run of generated requests against every operation finds no 5xx."""
from __future__ import annotations

import pytest


def test_the_openapi_document_lists_every_route(api):
    r = api.anonymous.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.") and doc["info"]["title"] == "Posthouse"
    paths = doc["paths"]
    for path, methods in {"/api/v1/contacts": {"get", "post"}, "/api/v1/contacts/{id}": {"get", "patch", "delete"},
                          "/api/v1/contacts/{id}/merge": {"post"}, "/api/v1/contacts/{id}/activities": {"get"},
                          "/api/v1/companies": {"get", "post"}, "/api/v1/companies/{id}": {"get"},
                          "/api/v1/activities": {"get"}, "/api/v1/activities/{id}": {"get"},
                          "/api/v1/activities/{id}/message": {"get"}, "/api/v1/accounts": {"get"},
                          "/api/v1/accounts/{id}": {"get"}, "/api/v1/contacts/{id}/documents": {"get", "post"},
                          "/api/v1/documents": {"get"}, "/api/v1/documents/{id}": {"get", "delete"},
                          "/api/v1/documents/{id}/content": {"get"}, "/api/v1/send": {"post"},
                          "/api/v1/classify": {"post"}}.items():
        assert methods <= set(paths[path]), path
    schemas = doc["components"]["schemas"]
    for name in ("Contact", "Company", "Activity", "Place", "Account", "Document", "Error"):
        assert name in schemas, name
    assert {"subject", "direction", "date"} <= set(schemas["Activity"]["properties"])
    assert not any("secret" in p or "password" in p for p in schemas["Account"]["properties"])
    assert any(s.get("scheme") == "bearer" for s in doc["components"]["securitySchemes"].values())
    message = paths["/api/v1/activities/{id}/message"]["get"]["responses"]
    assert "message/rfc822" in message["200"]["content"] and "410" in message


schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, settings  # noqa: E402


@pytest.fixture(scope="module")
def web_schema(api):
    return schemathesis.openapi.from_dict(api.app.openapi())


schema = schemathesis.pytest.from_fixture("web_schema")


@schema.parametrize()
# Bounded: a few generated requests per operation (schemathesis's boundary-value
# "coverage" phase alone makes ~1,400 requests, half a minute here: left out).
@settings(max_examples=5, phases=[Phase.generate], deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_generated_requests_get_no_5xx(case, api):
    r = case.call(base_url=api.url, headers={"Authorization": f"Bearer {api.alice_token}"})
    assert r.status_code < 500, (case.method, case.formatted_path, r.status_code, r.text[:500])
    if r.status_code >= 400:
        assert "error" in r.json(), (case.method, case.formatted_path, r.text[:300])


# -- the same over the real parts (crmside: the CRM, accounts, documents, sending) --------
@pytest.fixture(scope="module")
def real_api(tmp_path_factory):
    from posthouse.config import Config
    from posthouse.crmside import open_crm_side
    from posthouse.web.services import build_app
    from posthouse.web.tokens import TokenStore

    from .conftest import ServedApp
    config = Config(data_dir=str(tmp_path_factory.mktemp("realweb")))
    side = open_crm_side(config, local_users=lambda: ["alice"])
    side.crm.add_contact(name="Ann Buyer", emails=["ann@acme.example"], tags=["lead"])
    served = ServedApp(build_app(config, side))
    served.token = TokenStore(side.engine).create("alice", "tests")[1]
    yield served
    served.stop()
    side.close()


@pytest.fixture(scope="module")
def real_schema(real_api):
    return schemathesis.openapi.from_dict(_openapi_of(real_api))


def _openapi_of(served) -> dict:
    import httpx
    return httpx.get(served.url + "/api/v1/openapi.json", timeout=30).json()


real = schemathesis.pytest.from_fixture("real_schema")


@real.parametrize()
@settings(max_examples=5, phases=[Phase.generate], deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_generated_requests_against_the_real_parts_get_no_5xx(case, real_api):
    r = case.call(base_url=real_api.url, headers={"Authorization": f"Bearer {real_api.token}"})
    assert r.status_code < 500, (case.method, case.formatted_path, r.status_code, r.text[:500])
