"""Test settings: the real settings plus speed-only overrides."""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdefghij")
os.environ.setdefault("AGENTWALLET_NETWORK_SECRET", "test-network-secret")

from agentwallet.settings import *  # noqa: F403

SECURE_SSL_REDIRECT = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
