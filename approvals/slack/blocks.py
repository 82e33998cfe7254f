"""Block Kit payloads for Slack, built from plain data (no ORM, no I/O)."""

from __future__ import annotations

from typing import Any

SCOPE_NAMES = {
    "daily": "rolling 24h cap",
    "monthly": "monthly cap",
    "vendor": "card / vendor monthly cap",
    "trace": "per-trace cap",
}


def money(value: dict[str, str] | None) -> str:
    if not value:
        return "—"
    return f"{value['amount']} {value['currency']}"


def _fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in pairs],
    }


def approval_request_blocks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The approval card: who, which cap, spend so far, the charge, top traces, buttons."""
    approval_id = str(payload["approval_id"])
    principal = payload["principal"]
    owner = (
        f"<@{principal['slack_user_id']}>" if principal.get("slack_user_id") else principal["email"]
    )
    scope = SCOPE_NAMES.get(payload["scope"], payload["scope"])
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{payload['agent']['name']} hit its {scope}"},
        },
        _fields(
            [
                ("Agent", payload["agent"]["name"]),
                ("Owner", owner),
                ("Cap", f"{money(payload['cap'])} ({payload['scope_key']})"),
                ("Spent so far", money(payload["spent"])),
                ("Asking for", money(payload["requested"])),
                ("Why", payload.get("reason") or "—"),
            ]
        ),
    ]
    charge = payload.get("charge")
    if charge:
        both = money(charge["amount"])
        if charge["amount"]["currency"] != charge["cap_amount"]["currency"]:
            both += f" ({money(charge['cap_amount'])})"
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": (
                        f"*Declined charge:* {charge['vendor']} {both}"
                        + (f" on `{charge['trace_id']}`" if charge.get("trace_id") else "")
                    ),
                },
            }
        )
    traces = payload.get("top_traces") or []
    if traces:
        lines = "\n".join(f"• `{t['trace_id']}` {money(t['spent'])}" for t in traces)
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Top traces (24h)*\n{lines}"}}
        )
    blocks.append(
        {
            "type": "actions",
            "block_id": f"approval:{approval_id}",
            "elements": [
                {
                    "type": "button",
                    "style": "primary",
                    "action_id": "approve",
                    "value": approval_id,
                    "text": {
                        "type": "plain_text",
                        "text": f"Approve {money(payload['requested'])}",
                    },
                },
                {
                    "type": "button",
                    "action_id": "approve_amount",
                    "value": approval_id,
                    "text": {"type": "plain_text", "text": "Approve with amount…"},
                },
                {
                    "type": "button",
                    "style": "danger",
                    "action_id": "deny",
                    "value": approval_id,
                    "text": {"type": "plain_text", "text": "Deny"},
                },
            ],
        }
    )
    return blocks


def approval_request_text(payload: dict[str, Any]) -> str:
    """The notification fallback text."""
    return (
        f"{payload['agent']['name']} hit its {SCOPE_NAMES.get(payload['scope'], 'cap')}: "
        f"{money(payload['spent'])} of {money(payload['cap'])}; asks "
        f"{money(payload['requested'])}"
    )


def approval_outcome_blocks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The same card once decided: no buttons, the outcome instead."""
    outcome = payload["outcome"]
    blocks = [block for block in approval_request_blocks(payload) if block["type"] != "actions"]
    verb = {"approved": "✅ Approved", "denied": "⛔ Denied", "expired": "⌛ Expired"}.get(
        outcome["status"], outcome["status"]
    )
    text = f"{verb} by {outcome['decided_by']} via {outcome['decided_via']}"
    if outcome["status"] == "approved":
        text += f": +{money(outcome['approved_amount'])} until {outcome['valid_until']}"
    if outcome.get("note"):
        text += f"\n> {outcome['note']}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
    return blocks


def amount_modal(*, approval_id: int, requested: dict[str, str]) -> dict[str, Any]:
    """The modal behind 'Approve with amount'."""
    return {
        "type": "modal",
        "callback_id": "approve_amount",
        "private_metadata": str(approval_id),
        "title": {"type": "plain_text", "text": "Approve a bump"},
        "submit": {"type": "plain_text", "text": "Approve"},
        "blocks": [
            {
                "type": "input",
                "block_id": "amount",
                "label": {"type": "plain_text", "text": f"Amount ({requested['currency']})"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "initial_value": requested["amount"],
                },
            },
            {
                "type": "input",
                "block_id": "note",
                "optional": True,
                "label": {"type": "plain_text", "text": "Note"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            },
        ],
    }


def warning_blocks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    scope = payload["scope"]
    text = (
        f"⚠️ *{payload['agent']['name']}* passed {payload['threshold']}% of its "
        f"{scope} cap ({payload['scope_key']}): {money(payload['spent'])} of "
        f"{money(payload['cap'])}"
    )
    if payload.get("projected"):
        text += f"; at this pace {money(payload['projected'])} by the end of the window"
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def warning_text(payload: dict[str, Any]) -> str:
    return (
        f"{payload['agent']['name']} passed {payload['threshold']}% of its {payload['scope']} cap"
    )


def runaway_blocks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """A runaway: the trace or agent, the last hour against its usual busy hour, the
    cards that spent, and whether they were frozen."""
    agents = ", ".join(payload["agents"]) or "no agent"
    what = (
        f"Trace *{payload['trace_id']}* ({agents})"
        if payload["subject"] == "trace"
        else f"*{agents}*"
    )
    text = (
        f"🚨 {what} spent {money(payload['rate'])} in the last hour, against a usual busy "
        f"hour of {money(payload['baseline'])} over the last 7 days."
    )
    cards = [
        f"{card['agent']} · {card['vendor'] or 'no vendor'} •••• {card['last4']}"
        for card in payload["cards"]
    ]
    done = []
    if payload["frozen"]:
        done.append(f"Frozen (kill switch): {', '.join(payload['frozen'])}.")
    if payload.get("already_frozen"):
        done.append(f"Already frozen: {', '.join(payload['already_frozen'])}.")
    outcome = " ".join(done) or "Nothing was frozen: the policy says notify."
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "Cards: " + ("; ".join(cards) or "none")},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": outcome}]},
    ]


def runaway_text(payload: dict[str, Any]) -> str:
    subject = (
        f"Trace {payload['trace_id']}"
        if payload["subject"] == "trace"
        else ", ".join(payload["agents"])
    )
    return f"Runaway: {subject} spent {money(payload['rate'])} in the last hour"


def sprint_report_blocks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """A sprint's summary: spend per currency, its concentration and top traces, what no
    trace claimed, declines, approvals and runaways, and the link to the report."""
    lines = []
    for figures in payload["currencies"].values():
        concentration = figures["concentration"]
        tops = ", ".join(
            f"`{trace['trace_id']}` {money(trace['spent'])}" for trace in figures["top_traces"]
        )
        lines.append(
            f"*{money(figures['spent'])}* spent; {concentration['share_percent']}% of it by the "
            f"top {concentration['top_traces']} trace(s); {money(figures['unattributed'])} on no "
            f"trace. Top: {tops or 'none'}"
        )
    approvals = payload["approvals"]
    context = (
        f"{payload['declines']} declines · {approvals['asked']} approvals asked, "
        f"{approvals['granted']} granted · {payload['runaways']} runaways"
    )
    return [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"📊 *Sprint {payload['first_day']} to {payload['last_day']}*\n"
                + ("\n".join(lines) or "No spend."),
            },
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "open_report",
                    "text": {"type": "plain_text", "text": "Open the report"},
                    "url": payload["url"],
                }
            ],
        },
    ]


def sprint_report_text(payload: dict[str, Any]) -> str:
    return f"Sprint report {payload['first_day']} to {payload['last_day']}: {payload['url']}"


def reconciliation_blocks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The issuer's records of a day differ from our ledger: how many, of which kinds,
    the first few, and where finance looks at them all."""
    kinds = "\n".join(f"• {label}: {count}" for label, count in payload["by_kind"].items())
    examples = "\n".join(f"• {example}" for example in payload["examples"])
    return [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"🧾 {reconciliation_text(payload)}"},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": kinds}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"First of them:\n{examples}"}},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"<{payload['url']}|All of them in the portal>"}
            ],
        },
    ]


def reconciliation_text(payload: dict[str, Any]) -> str:
    return (
        f"Reconciliation with {payload['issuer'].title()} for {payload['day']}: "
        f"{payload['mismatches']} mismatch{'es' if payload['mismatches'] != 1 else ''}"
    )
