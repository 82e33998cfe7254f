from __future__ import annotations

import yaml
from django.core.management import call_command


def test_openapi_schema_validates_without_warnings(db, tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    paths = schema["paths"]
    for path in (
        "/api/agents",
        "/api/agents/{agent_id}/cards/{card_id}/freeze",
        "/api/agents/{agent_id}/budget",
        "/api/agents/{agent_id}/trace",
        "/api/policies/{slug}",
        "/api/vendors",
    ):
        assert path in paths
    assert schema["components"]["securitySchemes"]["bearerKey"]["scheme"] == "bearer"
    assert "Money" in schema["components"]["schemas"]


def test_schema_is_served(staff_client):
    response = staff_client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi" in response.content


def test_docs_are_served_from_local_assets(staff_client):
    page = staff_client.get("/api/docs/").content.decode()
    assert "swagger-ui" in page
    assert "/static/drf_spectacular_sidecar/" in page
    assert "cdn" not in page.lower()
