"""Secrets at rest (card numbers, wallet keys, signed payments): Fernet under a key
derived from AGENTWALLET_CARD_KEY, one derived key per purpose, so that a value sealed
for one purpose never opens as another."""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import cache

from cryptography.fernet import Fernet
from django.conf import settings


def derived_key(purpose: bytes) -> bytes:
    return hmac.new(settings.AGENTWALLET_CARD_KEY.encode(), purpose, hashlib.sha256).digest()


@cache
def _fernet(master_key: str, purpose: bytes) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derived_key(purpose)))


def seal(purpose: bytes, text: str) -> str:
    return _fernet(settings.AGENTWALLET_CARD_KEY, purpose).encrypt(text.encode()).decode()


def unseal(purpose: bytes, token: str) -> str:
    return _fernet(settings.AGENTWALLET_CARD_KEY, purpose).decrypt(token.encode()).decode()
