from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from wallets.actors import Actor
from wallets.models import ApiKey
from wallets.services import api_key_revoke


def test_key_is_stored_hashed_with_a_visible_prefix(alice):
    key = alice.api_key
    stored = ApiKey.objects.get(pk=key.pk)
    secret = alice.raw_key.split(".", 1)[1]
    assert alice.raw_key.startswith(stored.prefix + ".")
    assert secret not in stored.hashed_key
    assert secret not in stored.pk
    assert stored.hashed_key.startswith("sha512$$")


def test_valid_key_authenticates_and_records_last_use(alice, alice_client):
    assert ApiKey.objects.get(pk=alice.api_key.pk).last_used_at is None
    response = alice_client.get(f"/api/agents/{alice.agent.pk}")
    assert response.status_code == 200
    assert ApiKey.objects.get(pk=alice.api_key.pk).last_used_at is not None


def test_revoked_key_is_refused(alice, alice_client):
    api_key_revoke(api_key=alice.api_key, actor=Actor.system("test"))
    response = alice_client.get(f"/api/agents/{alice.agent.pk}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    stored = ApiKey.objects.get(pk=alice.api_key.pk)
    assert stored.revoked
    assert stored.revoked_at is not None


def test_expired_key_is_refused(alice, alice_client):
    ApiKey.objects.filter(pk=alice.api_key.pk).update(
        expiry_date=timezone.now() - timedelta(seconds=1)
    )
    assert alice_client.get(f"/api/agents/{alice.agent.pk}").status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer a b",
        "Bearer nonsense",
        "Bearer abcdefgh.wrongsecret",
        "Token abc",
    ],
)
def test_bad_credentials_are_refused_with_json(db, anon_client, header):
    response = anon_client.get("/api/agents", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_key_with_right_prefix_but_wrong_secret_is_refused(alice, anon_client):
    forged = alice.raw_key.split(".")[0] + ".x" * 16
    response = anon_client.get("/api/agents", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401


def test_create_api_key_command_prints_a_working_staff_key(db, capsys, anon_client):
    call_command("create_api_key", "--staff", "--name", "ops")
    raw_key = capsys.readouterr().out.strip()
    response = anon_client.get("/api/policies", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert response.status_code == 200


def test_create_api_key_command_for_an_agent_acts_as_that_agent(alice, bob, capsys, anon_client):
    call_command("create_api_key", "--agent", str(alice.agent.pk), "--name", "second")
    raw_key = capsys.readouterr().out.strip()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}
    assert anon_client.get(f"/api/agents/{alice.agent.pk}", **auth).status_code == 200
    assert anon_client.get(f"/api/agents/{bob.agent.pk}", **auth).status_code == 404


def test_create_api_key_command_refuses_unknown_agent(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No agent"):
        call_command(
            "create_api_key", "--agent", "00000000-0000-0000-0000-000000000000", "--name", "x"
        )
