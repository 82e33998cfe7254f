"""OpenAPI description of the network's signature authentication."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class NetworkSignatureScheme(OpenApiAuthenticationExtension):
    target_class = "ledger.network.NetworkSignatureAuthentication"
    name = "networkSignature"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "AgentWallet-Signature",
            "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<raw body>' under "
            "AGENTWALLET_NETWORK_SECRET>; 5-minute tolerance.",
        }
