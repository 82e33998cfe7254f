"""Test settings: the real settings plus speed-only overrides."""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdefghij")
os.environ.setdefault("AGENTWALLET_NETWORK_SECRET", "test-network-secret")
# Tests pay on Base Sepolia only (test money), as the demo does.
os.environ.setdefault("AGENTWALLET_X402_NETWORKS", "eip155:84532")
# The in-app MCP server fetches the tests' loopback paywall.
os.environ.setdefault("AGENTWALLET_MCP_FETCH_PRIVATE", "1")

from agentwallet.settings import *  # noqa: F403

SECURE_SSL_REDIRECT = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405

# Request threads (the live server's, the in-app MCP server's app threads) close their
# database connections when a request ends, so that none outlives a test into the
# test database's teardown. Production keeps them (CONN_MAX_AGE, settings.py).
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
