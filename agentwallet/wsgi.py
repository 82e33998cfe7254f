"""WSGI entry point (gunicorn agentwallet.wsgi)."""

from __future__ import annotations

import gc
import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentwallet.settings")

application = get_wsgi_application()

# The URLconf, and with it every view and what they import (the stripe package, DRF,
# the x402 signer), loaded now rather than by a worker's first request: that request may
# be a card authorization, and it would spend half a second of its deadline importing
# (bench/README.md, stripe_webhook.py).
import_module(settings.ROOT_URLCONF)

# What is loaded by now lives as long as the process: keep it out of the garbage
# collector's full collections, which scanned it all on every one (68 ms here, once in a
# few thousand requests; 14 ms frozen; bench/README.md). The use Python documents for
# long-running servers.
gc.freeze()
