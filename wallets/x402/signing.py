"""EIP-3009 `transferWithAuthorization`, signed as EIP-712 typed data with eth-account.

Our own thirty lines rather than the x402 SDK's signer, so that what an agent's key signs
is auditable here and the runtime needs no web3. The tests check it against the official
implementation (its facilitator verifies what this signs).
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account

from wallets.x402.networks import UsdcNetwork

TRANSFER_WITH_AUTHORIZATION = {
    "TransferWithAuthorization": [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "validAfter", "type": "uint256"},
        {"name": "validBefore", "type": "uint256"},
        {"name": "nonce", "type": "bytes32"},
    ]
}


@dataclass(frozen=True)
class TransferAuthorization:
    """What the payer lets anyone holding the signature move, once, until valid_before."""

    payer: str
    pay_to: str
    value: int  # atomic units of the token
    valid_after: int  # unix seconds
    valid_before: int
    nonce: bytes  # 32 random bytes

    def as_json(self) -> dict[str, str]:
        """The authorization as x402 payloads carry it: every value a string."""
        return {
            "from": self.payer,
            "to": self.pay_to,
            "value": str(self.value),
            "validAfter": str(self.valid_after),
            "validBefore": str(self.valid_before),
            "nonce": "0x" + self.nonce.hex(),
        }


def sign_transfer(
    private_key: str, network: UsdcNetwork, authorization: TransferAuthorization
) -> str:
    """The 65-byte signature (0x-prefixed hex) over the authorization, in USDC's domain
    on `network`."""
    message = {
        "from": authorization.payer,
        "to": authorization.pay_to,
        "value": authorization.value,
        "validAfter": authorization.valid_after,
        "validBefore": authorization.valid_before,
        "nonce": authorization.nonce,
    }
    signed = Account.sign_typed_data(
        private_key, network.domain(), TRANSFER_WITH_AUTHORIZATION, message
    )
    signature = signed.signature.hex()
    return signature if signature.startswith("0x") else "0x" + signature
