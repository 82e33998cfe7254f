from __future__ import annotations

from datetime import timedelta

import time_machine
from django.utils import timezone

from wallets.models import Agent


def test_setting_and_clearing_the_trace_context(alice, alice_client):
    url = f"/api/agents/{alice.agent.pk}/trace"
    response = alice_client.put(url, {"trace_id": "PR-4823", "ttl_seconds": 600}, format="json")
    assert response.status_code == 200
    assert response.json()["trace"]["trace_id"] == "PR-4823"
    agent = Agent.objects.get(pk=alice.agent.pk)
    assert agent.active_trace_at(timezone.now()) == "PR-4823"

    response = alice_client.delete(url)
    assert response.status_code == 200
    assert response.json()["trace"] is None
    assert Agent.objects.get(pk=alice.agent.pk).trace_id == ""


def test_trace_context_lapses_after_its_ttl(alice, alice_client):
    alice_client.put(
        f"/api/agents/{alice.agent.pk}/trace",
        {"trace_id": "PR-1", "ttl_seconds": 60},
        format="json",
    )
    agent = Agent.objects.get(pk=alice.agent.pk)
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        assert agent.active_trace_at(timezone.now()) == ""
        body = alice_client.get(f"/api/agents/{alice.agent.pk}").json()
        assert body["trace"] is None
