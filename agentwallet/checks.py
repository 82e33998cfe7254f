"""Deployment checks (`manage.py check --deploy`) for settings that Django cannot know
are wrong: registered from AgentWalletConfig.ready()."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_network_secret(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.AGENTWALLET_NETWORK_SECRET:
        return []
    return [
        Error(
            "AGENTWALLET_NETWORK_SECRET is empty: every card-network request will be "
            "refused, so no authorization can be approved.",
            hint="Set AGENTWALLET_NETWORK_SECRET to the HMAC key your card network signs with.",
            id="agentwallet.E001",
        )
    ]


@register(Tags.security, deploy=True)
def check_card_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.AGENTWALLET_CARD_KEY != settings.SECRET_KEY:
        return []
    return [
        Warning(
            "AGENTWALLET_CARD_KEY is SECRET_KEY (its default): rotating SECRET_KEY would "
            "make every stored card number and USDC wallet key unreadable.",
            hint="Set AGENTWALLET_CARD_KEY to a separate secret and keep it.",
            id="agentwallet.W001",
        )
    ]


@register()
def check_x402_networks(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A network the wallets cannot pay on would decline every x402 payment silently."""
    from wallets.x402.networks import KNOWN

    unknown = [name for name in settings.AGENTWALLET_X402_NETWORKS if name not in KNOWN]
    if not unknown:
        return []
    return [
        Error(
            f"AGENTWALLET_X402_NETWORKS names networks without a pinned USDC: {unknown}.",
            hint=f"Use CAIP-2 names among {sorted(KNOWN)}.",
            id="agentwallet.E002",
        )
    ]


@register()
def check_card_issuer(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The issuer must be known, and Stripe's must have what it needs to issue a card and
    to trust its webhooks: a misconfigured issuer would fail only at the first card."""
    from cards.issuers import ISSUERS

    if settings.AGENTWALLET_CARD_ISSUER not in ISSUERS:
        return [
            Error(
                f"AGENTWALLET_CARD_ISSUER={settings.AGENTWALLET_CARD_ISSUER!r} is not an issuer.",
                hint=f"Use one of {sorted(ISSUERS)}.",
                id="agentwallet.E010",
            )
        ]
    if settings.AGENTWALLET_CARD_ISSUER != "stripe":
        return []
    missing = [
        name for name in ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET") if not getattr(settings, name)
    ]
    address = settings.STRIPE_CARDHOLDER_ADDRESS
    if not isinstance(address, dict) or not all(
        address.get(field) for field in ("line1", "city", "postal_code", "country")
    ):
        missing.append("STRIPE_CARDHOLDER_ADDRESS (line1, city, postal_code, country)")
    if not missing:
        return []
    return [
        Error(
            f"AGENTWALLET_CARD_ISSUER=stripe needs {', '.join(missing)}.",
            hint="See README, 'Stripe Issuing'.",
            id="agentwallet.E011",
        )
    ]
