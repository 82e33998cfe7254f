from __future__ import annotations

from conftest import card_for


def _spend(network, provisioned, vendor, amount, trace_id=""):
    body = network.authorize(card_for(provisioned, vendor), amount, trace_id=trace_id).json()
    assert body["decision"] == "approved", body
    network.capture(body["id"], amount, id=f"cap_{body['id']}")
    return body["id"]


def test_ledger_lists_entries_newest_first_with_filters(alice, bob, network, staff_client):
    _spend(network, alice, "openai", "3.00", "PR-1")
    _spend(network, alice, "aws", "7.00", "PR-2")
    _spend(network, bob, "github", "1.00", "PR-1")

    everything = staff_client.get("/api/ledger").json()["results"]
    assert len(everything) == 9  # hold, capture and release each
    assert everything[0]["created_at"] >= everything[-1]["created_at"]

    by_trace = staff_client.get("/api/ledger", {"trace_id": "PR-1"}).json()["results"]
    assert {entry["vendor"] for entry in by_trace} == {"openai", "github"}
    by_vendor = staff_client.get("/api/ledger", {"vendor": "aws", "kind": "capture"}).json()
    assert [entry["cap_amount"]["amount"] for entry in by_vendor["results"]] == ["7.00"]
    by_agent = staff_client.get("/api/ledger", {"agent": str(bob.agent.pk)}).json()["results"]
    assert {entry["agent_id"] for entry in by_agent} == {str(bob.agent.pk)}
    card = card_for(alice, "aws")
    assert len(staff_client.get("/api/ledger", {"card": str(card.pk)}).json()["results"]) == 3
    assert staff_client.get("/api/ledger", {"rail": "usdc"}).json()["results"] == []


def test_ledger_filters_by_date_range(alice, network, staff_client):
    _spend(network, alice, "openai", "3.00")
    assert (
        staff_client.get("/api/ledger", {"since": "2999-01-01T00:00:00Z"}).json()["results"] == []
    )
    assert (
        len(staff_client.get("/api/ledger", {"until": "2999-01-01T00:00:00Z"}).json()["results"])
        == 3
    )


def test_bad_ledger_filters_are_400(staff_client, db):
    for params in ({"since": "yesterday"}, {"rail": "wire"}, {"agent": "nope"}):
        response = staff_client.get("/api/ledger", params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "invalid"


def test_ledger_is_cursor_paginated(alice, network, staff_client):
    for _ in range(4):
        _spend(network, alice, "openai", "1.00")
    first = staff_client.get("/api/ledger", {"page_size": 5}).json()
    assert len(first["results"]) == 5
    second = staff_client.get(first["next"]).json()
    assert len(second["results"]) == 5
    ids = {entry["id"] for entry in first["results"]} | {e["id"] for e in second["results"]}
    assert len(ids) == 10


def test_agents_see_only_their_own_ledger(alice, bob, network, alice_client):
    _spend(network, alice, "openai", "3.00")
    _spend(network, bob, "github", "1.00")
    mine = alice_client.get("/api/ledger").json()["results"]
    assert {entry["agent_id"] for entry in mine} == {str(alice.agent.pk)}
    # Filtering for another agent shows nothing rather than their entries.
    assert alice_client.get("/api/ledger", {"agent": str(bob.agent.pk)}).json()["results"] == []


def test_ledger_list_query_count_is_fixed(
    alice, network, staff_client, django_assert_max_num_queries
):
    for _ in range(5):
        _spend(network, alice, "openai", "1.00")
    with django_assert_max_num_queries(4):
        assert staff_client.get("/api/ledger").status_code == 200


def test_trace_detail_shows_spend_by_vendor_and_agent(alice, bob, network, staff_client):
    _spend(network, alice, "openai", "3.00", "PR-4823")
    _spend(network, alice, "aws", "7.00", "PR-4823")
    _spend(network, bob, "github", "1.50", "PR-4823")

    body = staff_client.get("/api/traces/PR-4823").json()
    assert body["spent"] == {"amount": "11.50", "currency": "USD"}
    assert {row["vendor"]: row["spent"]["amount"] for row in body["by_vendor"]} == {
        "aws": "7.00",
        "openai": "3.00",
        "github": "1.50",
    }
    assert {row["agent_name"]: row["spent"]["amount"] for row in body["by_agent"]} == {
        "alice-agent": "10.00",
        "bob-agent": "1.50",
    }
    listed = staff_client.get("/api/traces").json()
    assert listed[0]["trace_id"] == "PR-4823"


def test_agents_see_their_share_of_a_trace_and_404_for_others(alice, bob, network, alice_client):
    _spend(network, alice, "openai", "3.00", "PR-SHARED")
    _spend(network, bob, "github", "1.50", "PR-SHARED")
    _spend(network, bob, "github", "1.50", "PR-BOB")
    assert alice_client.get("/api/traces/PR-SHARED").json()["spent"]["amount"] == "3.00"
    response = alice_client.get("/api/traces/PR-BOB")
    assert response.status_code == 404
    assert [t["trace_id"] for t in alice_client.get("/api/traces").json()] == ["PR-SHARED"]


def test_a_qualified_trace_id_with_a_slash_and_a_hash_is_found(alice, network, staff_client):
    _spend(network, alice, "openai", "2.00", "owner/repo#4823")
    body = staff_client.get("/api/traces/owner%2Frepo%234823").json()
    assert body["spent"] == {"amount": "2.00", "currency": "USD"}
    assert staff_client.get("/api/traces/owner/repo%234823").json()["trace_id"] == (
        "owner/repo#4823"
    )
    assert staff_client.get("/api/traces/owner%2Fother%231").status_code == 404
