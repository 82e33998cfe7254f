"""With a real Redis broker and a real Celery worker process (PostgreSQL, committed data):
the Slack flow end to end, and Redis going away in the middle of a burst of declines."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from agentwallet.celery import app as celery_app
from approvals.models import ApprovalRequest, OutboxMessage
from approvals.tests.conftest import SIGNING_SECRET
from approvals.tests.fake_slack import TOKEN
from conftest import card_for
from ledger.models import SprintCalendar, SprintReport
from ledger.tasks import sprint_reports_due_task
from wallets.models import Principal

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.postgres


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisProcess:
    """A redis-server of the test's own, so it can be stopped and started at will."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed")
        self.process = subprocess.Popen(  # noqa: S603
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_process():
    redis = RedisProcess()
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def worker(
    transactional_db,
    django_db_serialized_rollback,
    requires_postgres,
    redis_process,
    fake_slack,
    settings,
    tmp_path,
):
    """A real `celery worker` on both queues, sharing the test database and fake Slack."""
    settings.REDIS_URL = redis_process.url
    old = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager")}
    celery_app.conf.update(broker_url=redis_process.url, task_always_eager=False)
    _forget_broker_connections()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": redis_process.url,
        "DEBUG": "1",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_API_URL": fake_slack.base_url,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_APPROVALS_CHANNEL": "C0APPROVALS",
        "DJANGO_SETTINGS_MODULE": "agentwallet.settings",
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "agentwallet",
                "worker",
                "-Q",
                "celery,slack",
                "-P",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the worker did not start:\n{log.read_text()}")
        time.sleep(0.2)
    yield process
    process.terminate()
    process.wait(timeout=30)
    celery_app.conf.update(**old)
    _forget_broker_connections()


def _forget_broker_connections() -> None:
    """Each test has its own Redis port: drop pooled connections to the last one."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def approval_cards(fake_slack):
    return [
        call
        for call in fake_slack.successful("chat.postMessage")
        if any(block["type"] == "actions" for block in call.body.get("blocks", []))
    ]


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_the_flow_through_a_real_worker(worker, alice, network, fake_slack, slack_clicks):
    Principal.objects.filter(pk=alice.agent.principal_id).update(slack_user_id="U0ALICE001")
    aws = card_for(alice, "aws")
    assert network.authorize(aws, "499.00").json()["decision"] == "approved"
    declined = network.authorize(aws, "5.00").json()
    assert declined["reason"] == "daily_cap_exceeded"

    [card] = fake_slack.wait_for("chat.postMessage", count=3)[-1:]  # 2 warnings, 1 card
    assert len(approval_cards(fake_slack)) == 1
    assert "alice-agent hit its rolling 24h cap" in str(approval_cards(fake_slack)[0].body)
    wait_until(lambda: ApprovalRequest.objects.get(pk=declined["approval_id"]).slack_ts)

    response = slack_clicks.click(declined["approval_id"], "approve", "U0ALICE001")
    assert response.status_code == 200  # acknowledged at once; the worker does the rest
    [update] = fake_slack.wait_for("chat.update")
    assert "Approved by" in str(update.body["blocks"])
    assert ApprovalRequest.objects.get(pk=declined["approval_id"]).status == "approved"
    assert network.authorize(aws, "5.00").json()["decision"] == "approved"
    del card


def test_redis_down_during_a_burst_of_declines(
    worker, provision, network, fake_slack, redis_process
):
    agents = [provision(name=f"burst-{i}", email=f"b{i}@example.com") for i in range(6)]
    for agent in agents:  # each agent to the edge of its daily cap
        assert network.authorize(card_for(agent, "aws"), "499.50").json()["decision"] == (
            "approved"
        )
    fake_slack.wait_for("chat.postMessage", count=12)  # their 80% and 95% warnings
    redis_process.stop()

    started = time.monotonic()
    decisions = [network.authorize(card_for(agent, "aws"), "1.00").json() for agent in agents]
    elapsed = time.monotonic() - started
    assert [d["reason"] for d in decisions] == ["daily_cap_exceeded"] * len(agents)
    assert all(d["approval_id"] for d in decisions)
    waiting = OutboxMessage.objects.filter(kind="approval_request", status="pending")
    assert waiting.count() == len(agents)  # nothing lost: the outbox holds them
    assert approval_cards(fake_slack) == []

    redis_process.start()  # the same port: the worker reconnects
    from approvals.outbox import sweep_outbox_task

    sweep_outbox_task.apply_async(retry=True)
    wait_until(lambda: len(approval_cards(fake_slack)) >= len(agents), timeout=60)
    time.sleep(1)  # any duplicate would arrive now
    posted = [
        str(call.body["blocks"][-1]["elements"][0]["value"]) for call in approval_cards(fake_slack)
    ]
    assert sorted(posted) == sorted(str(d["approval_id"]) for d in decisions)  # once each
    assert not OutboxMessage.objects.filter(status="pending").exists()
    print(f"\n{len(agents)} declines decided in {elapsed * 1000:.0f} ms with Redis down")


def test_a_sprint_report_through_a_real_worker(worker, alice, network, fake_slack):
    """Beat's report task as the worker runs it: the last ended sprint's report stored,
    and the Slack summary delivered by the worker's outbox task."""
    # 14-day sprints from 16 days ago: the one that has ended began then.
    first = timezone.now().date() - timedelta(days=16)
    SprintCalendar.objects.update_or_create(pk=1, defaults={"first_day": first})
    with time_machine.travel(datetime.combine(first, clock_time(12), tzinfo=UTC), tick=False):
        assert network.authorize(card_for(alice, "aws"), "4.00").json()["decision"] == "approved"
    sprint_reports_due_task.delay()
    wait_until(lambda: SprintReport.objects.filter(first_day=first).exists())
    report = SprintReport.objects.get(first_day=first)
    assert report.figures["currencies"]["USD"]["spent"]["amount"] == "4.00"
    wait_until(
        lambda: any(
            call.body["text"].startswith("Sprint report")
            for call in fake_slack.successful("chat.postMessage")
        )
    )
