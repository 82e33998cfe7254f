"""The networks a wallet pays on and the one asset it pays with there: USDC.

Pinned in code, not taken from a 402: a hostile server may name another EIP-3009 token
(or the right token with another EIP-712 domain, which signs for something else).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class UsdcNetwork:
    caip2: str  # v2's network name
    v1_name: str  # v1's
    chain_id: int
    usdc: str  # the USDC contract, checksummed
    # USDC's EIP-712 domain on this chain (name and version differ between chains).
    domain_name: str
    domain_version: str

    def domain(self) -> dict[str, object]:
        return {
            "name": self.domain_name,
            "version": self.domain_version,
            "chainId": self.chain_id,
            "verifyingContract": self.usdc,
        }


USDC_DECIMALS = 6

BASE = UsdcNetwork(
    caip2="eip155:8453",
    v1_name="base",
    chain_id=8453,
    usdc="0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
    domain_name="USD Coin",
    domain_version="2",
)
BASE_SEPOLIA = UsdcNetwork(
    caip2="eip155:84532",
    v1_name="base-sepolia",
    chain_id=84532,
    usdc="0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    domain_name="USDC",
    domain_version="2",
)
KNOWN = {network.caip2: network for network in (BASE, BASE_SEPOLIA)}
_BY_NAME = KNOWN | {network.v1_name: network for network in KNOWN.values()}


def network_named(name: str) -> UsdcNetwork | None:
    """The pinned network a 402 names, by its CAIP-2 (v2) or its v1 name."""
    return _BY_NAME.get(name)


def accepted_networks() -> tuple[UsdcNetwork, ...]:
    """The networks this deployment pays on (AGENTWALLET_X402_NETWORKS)."""
    return tuple(KNOWN[name] for name in settings.AGENTWALLET_X402_NETWORKS if name in KNOWN)
