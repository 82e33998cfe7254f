"""Card numbers at rest: Fernet encryption plus a keyed fingerprint for uniqueness."""

from __future__ import annotations

import hashlib
import hmac

from agentwallet.lib.sealing import derived_key, seal, unseal

_NUMBER = b"agentwallet.card-number.v1"


def encrypt_number(number: str) -> str:
    return seal(_NUMBER, number)


def decrypt_number(ciphertext: str) -> str:
    return unseal(_NUMBER, ciphertext)


def number_fingerprint(number: str) -> str:
    return hmac.new(
        derived_key(b"agentwallet.card-fingerprint.v1"), number.encode(), hashlib.sha256
    ).hexdigest()
