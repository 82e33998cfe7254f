"""An agent's USDC wallet: its EVM key made with eth-account, sealed at rest."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from eth_account import Account

from agentwallet.lib.sealing import seal, unseal
from wallets.models import Agent, UsdcWallet, WalletStatus

_PRIVATE_KEY = b"agentwallet.usdc-wallet-key.v1"


def wallet_create(*, agent: Agent) -> UsdcWallet:
    """A new agent's wallet: a fresh key from the OS's randomness (eth-account)."""
    account = Account.create()
    return UsdcWallet.objects.create(
        agent=agent,
        address=account.address,
        private_key_encrypted=seal(_PRIVATE_KEY, account.key.hex()),
    )


def wallet_ensure(*, agent: Agent) -> UsdcWallet:
    """The agent's wallet, made on first use."""
    try:
        return UsdcWallet.objects.get(agent=agent)
    except UsdcWallet.DoesNotExist:
        pass
    try:
        with transaction.atomic():
            return wallet_create(agent=agent)
    except IntegrityError:  # made meanwhile by a concurrent first payment: that one wins
        return UsdcWallet.objects.get(agent=agent)


def unseal_private_key(sealed: str) -> str:
    """A wallet's key (UsdcWallet.private_key_encrypted), for signing only
    (wallets.x402.signing); never returned or logged."""
    return unseal(_PRIVATE_KEY, sealed)


def wallet_status_set(*, agent: Agent, frozen: bool) -> None:
    """The kill switch: an agent's freeze stops its x402 payments with its cards. An
    agent without a wallet gets one, frozen, so that no first payment makes it active."""
    status = WalletStatus.FROZEN if frozen else WalletStatus.ACTIVE
    if not UsdcWallet.objects.filter(agent=agent).update(status=status) and frozen:
        wallet_ensure(agent=agent)
        UsdcWallet.objects.filter(agent=agent).update(status=status)
