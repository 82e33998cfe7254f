"""Card numbers at rest: Fernet encryption plus a keyed fingerprint for uniqueness."""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import cache

from cryptography.fernet import Fernet
from django.conf import settings


def _derive(purpose: bytes) -> bytes:
    return hmac.new(settings.AGENTWALLET_CARD_KEY.encode(), purpose, hashlib.sha256).digest()


@cache
def _fernet(card_key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive(b"agentwallet.card-number.v1")))


def encrypt_number(number: str) -> str:
    return _fernet(settings.AGENTWALLET_CARD_KEY).encrypt(number.encode()).decode()


def decrypt_number(ciphertext: str) -> str:
    return _fernet(settings.AGENTWALLET_CARD_KEY).decrypt(ciphertext.encode()).decode()


def number_fingerprint(number: str) -> str:
    return hmac.new(
        _derive(b"agentwallet.card-fingerprint.v1"), number.encode(), hashlib.sha256
    ).hexdigest()
