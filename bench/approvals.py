"""What the approval outbox costs a cap decline, on PostgreSQL.

    .venv/bin/python bench/approvals.py [--quick]

In one process, interleaved round by round: an approval; a plain decline (`card_frozen`,
which writes nothing more); a first cap decline (an approval request and a Slack message
written to the outbox, handed to the broker after commit); and a cap decline that
attaches to the open request (an update). The broker is a closed port, as when Redis is
down: the hand-off fails in its thread, never in the decision. Target: a cap decline with
its outbox write at most 10% slower than the plain decline (p50).
"""

from __future__ import annotations

import random
import time
from decimal import Decimal

import harness

TARGET_RATIO = 1.10


def main() -> int:
    parser = harness.common_arguments(__doc__.splitlines()[0], "approvals.json")
    args = parser.parse_args()
    rounds = 150 if args.quick else 600
    code = args.code.resolve()
    harness.django_setup(code, args.postgres_url)
    harness.recreate_database(args.postgres_url)
    harness.principals_verified(["lead@example.com"])

    from agentwallet.celery import app
    from cards.services import card_freeze
    from ledger.services import AuthorizationRequest, authorization_decide
    from policies.models import Policy
    from wallets.actors import Actor
    from wallets.services import agent_provision

    app.conf.update(task_always_eager=False, broker_url="redis://127.0.0.1:1/0")
    policy = Policy.objects.get(slug="starter")  # $500 rolling day
    serial = iter(range(10**9))

    def new_card(vendor: str = "openai") -> tuple[str, str]:
        made = agent_provision(
            name=f"agent-{next(serial)}",
            principal_email="lead@example.com",
            policy=policy,
            actor=Actor.system(),
        )
        card = next(new.card for new in made.cards if new.card.vendor.slug == vendor)
        return str(card.pk), card.allowed_mccs[0], vendor

    def decide(card: tuple[str, str, str], amount: str) -> tuple[float, str]:
        started = time.perf_counter()
        decided = authorization_decide(
            request=AuthorizationRequest(
                network_id=f"n-{next(serial)}",
                card_id=card[0],
                amount=Decimal(amount),
                currency="USD",
                merchant_mcc=card[1],
                **harness.MERCHANTS[card[2]],
            )
        ).decided
        return time.perf_counter() - started, decided.reason or decided.decision

    approving = new_card()
    frozen = new_card()
    from cards.models import Card

    card_freeze(card=Card.objects.get(pk=frozen[0]), actor=Actor.system(), reason="bench")
    attaching = new_card("aws")
    decide(attaching, "499.00")
    decide(attaching, "5.00")  # opens the approval request the others attach to
    took: dict[str, list[float]] = {
        "approval": [],
        "plain decline": [],
        "first cap decline": [],
        "attached cap decline": [],
    }
    outcomes: dict[str, set[str]] = {name: set() for name in took}
    fresh = [new_card("aws") for _ in range(rounds)]
    for card in fresh:
        decide(card, "499.00")  # $5 more goes over its $500 day: its first cap decline
    for n in range(rounds):
        classes = [
            ("approval", approving, "0.01"),
            ("plain decline", frozen, "1.00"),
            ("first cap decline", fresh[n], "5.00"),
            ("attached cap decline", attaching, "5.00"),
        ]
        random.Random(n).shuffle(classes)
        for name, card, amount in classes:
            seconds, outcome = decide(card, amount)
            if n >= 10:
                took[name].append(seconds)
                outcomes[name].add(outcome)
    figures = {name: harness.summary(values) for name, values in took.items()}
    plain = figures["plain decline"]["p50_ms"]
    ratios = {
        name: round(figures[name]["p50_ms"] / plain, 3)
        for name in ("first cap decline", "attached cap decline")
    }
    print(
        harness.table(
            ["class", "p50 ms", "p99 ms", "outcome"],
            [
                (name, f["p50_ms"], f["p99_ms"], ",".join(sorted(outcomes[name])))
                for name, f in figures.items()
            ],
        )
    )
    verdict = max(ratios.values()) <= TARGET_RATIO
    print(f"{'PASS' if verdict else 'MISS'}  cap declines / plain decline (p50): {ratios}")
    harness.write_json(
        args.output,
        {
            "benchmark": "approval_outbox",
            "target_ratio_at_most": TARGET_RATIO,
            "machine": harness.machine_info(code),
            "result": {"rounds": rounds, "classes": figures, "ratios": ratios, "pass": verdict},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
