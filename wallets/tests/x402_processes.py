"""The offline x402 network's processes (wallets/tests/x402_network.py), started on free
loopback ports: for the tests' fixtures (wallets/tests/conftest.py) and bench/x402.py.

Why subprocesses: the official SDK's servers are uvicorn apps with their own event loops;
running each in its own process keeps them apart from pytest and from Django, and the
loopback guard they install cannot leak into anything else.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
X402_START_TIMEOUT_S = 30.0
X402_POLL_INTERVAL_S = 0.05


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def x402_process(
    args: list[str], probe: str, ready: Callable[[httpx.Response], bool]
) -> Iterator[str]:
    """Run ``python -m wallets.tests.x402_network ARGS --port P``; yield its base URL.

    Ready once GET ``probe`` satisfies ``ready`` (polled every 50 ms, 30 s at most). stderr
    goes to a temporary file, not a pipe nobody reads (which could fill and block the
    server), and is quoted if the process dies or never gets ready. Terminated on exit.
    """
    port = _free_loopback_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "wallets.tests.x402_network", *args, "--port", str(port)]
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost,::1", "no_proxy": "127.0.0.1,::1"}
    with tempfile.TemporaryFile() as stderr:
        # Our own interpreter and module with fixed arguments: nothing untrusted.
        process = subprocess.Popen(  # noqa: S603
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            last_error = _wait_until_ready(process, base_url, probe, ready)
            if last_error is not None:
                _stop(process)
                stderr.seek(0)
                raise RuntimeError(
                    f"{' '.join(command)} did not get ready at {base_url} "
                    f"(exit code {process.returncode}, last probe: {last_error}); stderr:\n"
                    + stderr.read().decode("utf-8", "replace")
                )
            yield base_url
        finally:
            _stop(process)


def _wait_until_ready(
    process: subprocess.Popen[bytes],
    base_url: str,
    probe: str,
    ready: Callable[[httpx.Response], bool],
) -> str | None:
    """None once ready; otherwise why not (the process exited, or the deadline passed)."""
    deadline = time.monotonic() + X402_START_TIMEOUT_S
    last_error = "no answer yet"
    with httpx.Client(base_url=base_url, timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return f"exited; {last_error}"
            try:
                response = client.get(probe, headers={"Accept": "application/json"})
                if ready(response):
                    return None
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                last_error = repr(exc)
            time.sleep(X402_POLL_INTERVAL_S)
    return f"timed out after {X402_START_TIMEOUT_S:.0f} s; {last_error}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass(frozen=True)
class Network:
    """A running facilitator (on its FakeChain) and the paywalled API in front of it."""

    facilitator_url: str
    server_url: str

    def mint(self, address: str, atomic: int) -> None:
        response = httpx.post(
            f"{self.facilitator_url}/chain/mint",
            json={"address": address, "atomic": atomic},
            trust_env=False,
        )
        response.raise_for_status()

    def balance(self, address: str) -> int:
        response = httpx.get(f"{self.facilitator_url}/chain/balance/{address}", trust_env=False)
        response.raise_for_status()
        return int(response.json()["atomic"])

    def transactions(self) -> list[str]:
        response = httpx.get(f"{self.facilitator_url}/chain/transactions", trust_env=False)
        response.raise_for_status()
        return list(response.json()["transactions"])


@contextmanager
def running_facilitator() -> Iterator[str]:
    with x402_process(
        ["facilitator"],
        "/supported",
        lambda response: response.status_code == 200 and "kinds" in response.json(),
    ) as base_url:
        yield base_url


@contextmanager
def running_server(facilitator_url: str, pay_to: str) -> Iterator[str]:
    with x402_process(
        ["server", "--facilitator", facilitator_url, "--pay-to", pay_to],
        "/cheap",
        lambda response: response.status_code == 402,
    ) as base_url:
        yield base_url


@contextmanager
def running_network(*, pay_to: str) -> Iterator[Network]:
    """The facilitator first (the paywall asks it what it supports at startup)."""
    with (
        running_facilitator() as facilitator_url,
        running_server(facilitator_url, pay_to) as server_url,
    ):
        yield Network(facilitator_url=facilitator_url, server_url=server_url)
