"""Fixtures for the offline x402 network (wallets/tests/x402_network.py), started once a
session (wallets/tests/x402_processes.py). None of them touches the database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from eth_utils import keccak

from wallets.tests.x402_processes import Network, running_facilitator, running_server


@pytest.fixture(scope="session")
def x402_facilitator() -> Iterator[str]:
    """Base URL of the official x402 facilitator on a FakeChain (test-only /chain/*)."""
    with running_facilitator() as base_url:
        yield base_url


@pytest.fixture(scope="session")
def x402_pay_to() -> str:
    """The paywalled API's payee: a fixed, checksummed address (no key is ever used)."""
    return Account.from_key(keccak(text="agentwallet x402 test payee")).address


@pytest.fixture(scope="session")
def x402_server(x402_facilitator: str, x402_pay_to: str) -> Iterator[str]:
    """Base URL of the official paywalled API: GET /cheap ($0.01), GET /pricey ($6)."""
    with running_server(x402_facilitator, x402_pay_to) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def x402_network(x402_facilitator: str, x402_server: str) -> Network:
    return Network(facilitator_url=x402_facilitator, server_url=x402_server)
