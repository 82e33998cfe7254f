"""The Celery app. Broker: REDIS_URL; without it tasks run eagerly (embedded mode)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentwallet.settings")

app = Celery("agentwallet")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
