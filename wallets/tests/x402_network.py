"""An offline x402 network for interoperability tests: a fake chain, a facilitator, a paywall.

Why: AgentWallet must pay real x402 servers, so the tests pay the *official* x402 SDK
(PyPI ``x402==2.25.0``) end to end without internet. Only the chain is fake:

- ``FakeChain`` is an in-memory EVM implementing the SDK's ``FacilitatorEvmSigner``
  protocol. Its token behaves like USDC's ``transferWithAuthorization`` (EIP-3009): it
  checks the time window, the nonce, the EIP-712 signature and the balance itself, so a
  bug in the facilitator cannot make a bad payment settle.
- ``facilitator_app`` is the official ``x402FacilitatorSync`` over HTTP (``/verify``,
  ``/settle``, ``/supported``) plus test-only ``/chain/...`` endpoints.
- ``paywalled_app`` is the official FastAPI ``PaymentMiddlewareASGI`` pricing two routes.

Run (from the repository root, loopback only)::

    python -m wallets.tests.x402_network facilitator --port 4022
    python -m wallets.tests.x402_network server --port 4021 \\
        --facilitator http://127.0.0.1:4022 --pay-to 0x...

This module never imports Django, so the subprocesses start fast and need no settings.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any

from eth_abi import decode, encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import is_address, keccak, to_checksum_address
from fastapi import Body, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from web3.exceptions import BadFunctionCallOutput, ContractLogicError, TimeExhausted
from x402 import x402FacilitatorSync, x402ResourceServer
from x402.http import FacilitatorConfig, HTTPFacilitatorClient, PaymentOption, RouteConfig
from x402.http.middleware.fastapi import PaymentMiddlewareASGI
from x402.mechanisms.evm.constants import (
    AUTHORIZATION_STATE_ABI,
    BALANCE_OF_ABI,
    MULTICALL3_ADDRESS,
    NAME_ABI,
    TRANSFER_WITH_AUTHORIZATION_BYTES_ABI,
    TRANSFER_WITH_AUTHORIZATION_VRS_ABI,
    VERSION_ABI,
)
from x402.mechanisms.evm.exact import ExactEvmServerScheme, register_exact_evm_facilitator
from x402.mechanisms.evm.types import (
    AUTHORIZATION_TYPES,
    TransactionReceipt,
    TypedDataDomain,
    TypedDataField,
)
from x402.schemas import PaymentError, parse_payment_payload, parse_payment_requirements

BASE_SEPOLIA = "eip155:84532"
BASE_SEPOLIA_CHAIN_ID = 84532
USDC_SEPOLIA = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"

# The facilitator's gas-paying account. Deterministic so /supported is stable; it never
# signs anything on this fake chain, it is only reported by get_addresses().
FACILITATOR_ADDRESS = Account.from_key(keccak(text="agentwallet x402 fake facilitator")).address

# keccak256("Transfer(address,address,uint256)"): the facilitator checks receipts for it.
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
# Placeholder bytecode: only its non-emptiness matters ("this address is a contract").
_FAKE_CODE = bytes.fromhex("6080604052")
_ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string), as Solidity reverts
_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


# ---------------------------------------------------------------------------
# Loopback guard
# ---------------------------------------------------------------------------


class LoopbackOnlyError(ConnectionRefusedError):
    """A connection beyond loopback was attempted; these processes must stay offline."""


def _is_loopback_host(host: object) -> bool:
    if host is None:  # getaddrinfo(None, port): a local wildcard, no lookup happens
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]").split("%", 1)[0].lower()
    if host in {"localhost", "localhost.", "ip6-localhost"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def install_loopback_guard() -> None:
    """Refuse any socket connection (and name lookup) that is not loopback.

    Why: the official SDK defaults to the public facilitator at x402.org; a misconfigured
    URL must fail loudly here rather than reach the internet. Idempotent.
    """
    if getattr(socket.socket.connect, "_loopback_guard", False):
        return

    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_create_connection = socket.create_connection
    original_getaddrinfo = socket.getaddrinfo

    def check(family: int, address: Any) -> None:
        if family == getattr(socket, "AF_UNIX", None):
            return
        host = address[0] if isinstance(address, tuple) and address else address
        if not _is_loopback_host(host):
            raise LoopbackOnlyError(f"x402 test network is loopback-only; refused {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        check(self.family, address)
        return original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self.family, address)
        return original_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        check(socket.AF_INET, address)
        return original_create_connection(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        check(socket.AF_INET, (host,))
        return original_getaddrinfo(host, *args, **kwargs)

    connect._loopback_guard = True  # type: ignore[attr-defined]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.create_connection = create_connection  # type: ignore[assignment]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


# ---------------------------------------------------------------------------
# Fake chain
# ---------------------------------------------------------------------------


class ContractRevert(ContractLogicError):
    """What web3 raises when an eth_call or gas estimate reverts.

    The message carries the token's revert string ("execution reverted: ..."), which the
    SDK maps to its error codes (e.g. "authorization is used" -> nonce_already_used).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"execution reverted: {reason}")
        self.reason = reason

    def __str__(self) -> str:
        return f"execution reverted: {self.reason}"


@dataclass(frozen=True)
class Token:
    """An EIP-3009 token's EIP-712 domain fields (name, version) and decimals."""

    name: str
    version: str
    decimals: int = 6


@dataclass(frozen=True)
class Transfer:
    """One settled transferWithAuthorization, as the chain's history keeps it."""

    tx_hash: str
    token: str
    sender: str
    recipient: str
    value: int
    nonce: str
    block_number: int


def _abi_table(abis: list[list[dict[str, Any]]]) -> dict[bytes, tuple[str, list[str], list[str]]]:
    """selector -> (name, input types, output types), to decode Multicall3 sub-calls."""
    table = {}
    for abi in abis:
        for entry in abi:
            inputs = [item["type"] for item in entry.get("inputs", [])]
            outputs = [item["type"] for item in entry.get("outputs", [])]
            selector = keccak(text=f"{entry['name']}({','.join(inputs)})")[:4]
            table[selector] = (entry["name"], inputs, outputs)
    return table


_TOKEN_FUNCTIONS = _abi_table(
    [
        BALANCE_OF_ABI,
        NAME_ABI,
        VERSION_ABI,
        AUTHORIZATION_STATE_ABI,
        TRANSFER_WITH_AUTHORIZATION_VRS_ABI,
        TRANSFER_WITH_AUTHORIZATION_BYTES_ABI,
        [
            {
                "name": "decimals",
                "type": "function",
                "inputs": [],
                "outputs": [{"name": "", "type": "uint8"}],
            }
        ],
    ]
)


def _typed_data(
    domain: TypedDataDomain | dict[str, Any],
    types: dict[str, list[TypedDataField]] | dict[str, list[dict[str, str]]],
    primary_type: str,
    message: dict[str, Any],
) -> dict[str, Any]:
    """The eth_account ``full_message`` for an EIP-712 payload (domain type derived)."""
    if isinstance(domain, TypedDataDomain):
        domain = {
            "name": domain.name,
            "version": domain.version,
            "chainId": domain.chain_id,
            "verifyingContract": domain.verifying_contract,
        }
    domain_fields = {
        "name": "string",
        "version": "string",
        "chainId": "uint256",
        "verifyingContract": "address",
        "salt": "bytes32",
    }
    full_types: dict[str, list[dict[str, str]]] = {
        "EIP712Domain": [
            {"name": k, "type": domain_fields[k]} for k in domain if k in domain_fields
        ]
    }
    for name, fields in types.items():
        if name == "EIP712Domain":
            continue
        full_types[name] = [
            {"name": f.name, "type": f.type} if isinstance(f, TypedDataField) else dict(f)
            for f in fields
        ]
    msg = {k: ("0x" + v.hex() if isinstance(v, bytes) else v) for k, v in message.items()}
    return {"types": full_types, "primaryType": primary_type, "domain": domain, "message": msg}


class FakeChain:
    """An in-memory EVM chain implementing x402's ``FacilitatorEvmSigner`` protocol.

    Token contracts (Base Sepolia USDC by default) "have code"; every other address is an
    EOA with none. State is balances per (token, address) in atomic units and the used
    EIP-3009 authorizations per (token, from, nonce). One lock serialises all of it, so
    two settles racing for one nonce cannot both win, as on a real chain.

    ``calls`` counts which signer methods were used (handy to see what the SDK needs).
    """

    def __init__(
        self,
        chain_id: int = BASE_SEPOLIA_CHAIN_ID,
        tokens: dict[str, Token] | None = None,
    ) -> None:
        self.chain_id = chain_id
        self._tokens = {
            to_checksum_address(address): token
            for address, token in (tokens or {USDC_SEPOLIA: Token("USDC", "2")}).items()
        }
        self._lock = threading.RLock()
        self._balances: dict[tuple[str, str], int] = {}
        self._used: set[tuple[str, str, bytes]] = set()
        self._receipts: dict[str, TransactionReceipt] = {}
        self._transfers: list[Transfer] = []
        self._block_number = 0
        self.calls: Counter[str] = Counter()

    # -- test helpers --------------------------------------------------------

    def mint(self, address: str, atomic: int, token: str = USDC_SEPOLIA) -> int:
        """Credit ``atomic`` units of ``token`` to ``address``; returns the new balance."""
        if int(atomic) < 0:
            raise ValueError("cannot mint a negative amount")
        key = (self._token_address(token), to_checksum_address(address))
        with self._lock:
            self._balances[key] = self._balances.get(key, 0) + int(atomic)
            return self._balances[key]

    def balance_of(self, address: str, token: str = USDC_SEPOLIA) -> int:
        """The balance of ``address`` in ``token``'s atomic units."""
        key = (self._token_address(token), to_checksum_address(address))
        with self._lock:
            return self._balances.get(key, 0)

    def transfers(self) -> list[Transfer]:
        """Every settled transfer, oldest first."""
        with self._lock:
            return list(self._transfers)

    # -- FacilitatorEvmSigner ------------------------------------------------

    def get_addresses(self) -> list[str]:
        self._count("get_addresses")
        return [FACILITATOR_ADDRESS]

    def get_chain_id(self) -> int:
        self._count("get_chain_id")
        return self.chain_id

    def get_code(self, address: str) -> bytes:
        self._count("get_code")
        return _FAKE_CODE if self._is_contract(address) else b""

    def get_balance(self, address: str, token_address: str) -> int:
        self._count("get_balance")
        return self.balance_of(address, token_address)

    def read_contract(
        self, address: str, abi: list[dict[str, Any]], function_name: str, *args: Any
    ) -> Any:
        """An eth_call: runs the function without changing state; reverts raise."""
        self._count(f"read_contract:{function_name}")
        contract = to_checksum_address(address)
        with self._lock:
            if contract == to_checksum_address(MULTICALL3_ADDRESS) and function_name in {
                "tryAggregate",
                "aggregate3",
            }:
                return self._try_aggregate(function_name, args)
            return self._execute(contract, function_name, args, commit=False)

    def write_contract(
        self,
        address: str,
        abi: list[dict[str, Any]],
        function_name: str,
        *args: Any,
        data_suffix: str | None = None,
    ) -> str:
        """A mined transaction. Reverts raise, as web3's gas estimate would before sending."""
        self._count(f"write_contract:{function_name}")
        with self._lock:
            tx_hash, logs = self._new_tx_hash(), []
            transfer = self._execute(
                to_checksum_address(address), function_name, args, commit=True, tx_hash=tx_hash
            )
            if isinstance(transfer, Transfer):
                logs.append(_transfer_log(transfer))
            return self._mine(tx_hash, logs)

    def send_transaction(self, to: str, data: bytes) -> str:
        """A raw transaction: token calldata is executed; to an EOA it is a no-op."""
        self._count("send_transaction")
        with self._lock:
            tx_hash, logs = self._new_tx_hash(), []
            target = to_checksum_address(to)
            if target in self._tokens:
                name, inputs, _ = self._decode_call(data)
                transfer = self._execute(
                    target, name, decode(inputs, data[4:]), commit=True, tx_hash=tx_hash
                )
                if isinstance(transfer, Transfer):
                    logs.append(_transfer_log(transfer))
            return self._mine(tx_hash, logs)

    def wait_for_transaction_receipt(self, tx_hash: str) -> TransactionReceipt:
        self._count("wait_for_transaction_receipt")
        with self._lock:
            receipt = self._receipts.get(tx_hash.lower())
        if receipt is None:
            raise TimeExhausted(f"transaction {tx_hash} is not on this chain")
        return receipt

    def verify_typed_data(
        self,
        address: str,
        domain: TypedDataDomain | dict[str, Any],
        types: dict[str, list[TypedDataField]],
        primary_type: str,
        message: dict[str, Any],
        signature: bytes,
    ) -> bool:
        """EIP-712 ecrecover: True only if ``signature`` recovers to ``address``.

        Addresses with code get False: this chain has no EIP-1271 wallets.
        """
        self._count("verify_typed_data")
        return self._signed_by(address, domain, types, primary_type, message, signature)

    def _signed_by(
        self,
        address: str,
        domain: TypedDataDomain | dict[str, Any],
        types: dict[str, list[TypedDataField]] | dict[str, list[dict[str, str]]],
        primary_type: str,
        message: dict[str, Any],
        signature: bytes,
    ) -> bool:
        if self._is_contract(address):
            return False
        try:
            full_message = _typed_data(domain, types, primary_type, message)
            recovered = Account.recover_message(
                encode_typed_data(full_message=full_message), signature=bytes(signature)
            )
        except Exception:
            return False
        return recovered.lower() == address.lower()

    # -- the token contract ----------------------------------------------------

    def _execute(
        self,
        contract: str,
        function_name: str,
        args: tuple[Any, ...] | list[Any],
        *,
        commit: bool,
        tx_hash: str = "",
    ) -> Any:
        token = self._tokens.get(contract)
        if token is None:
            # web3's answer to a call into an address without code.
            raise BadFunctionCallOutput(f"no contract code at {contract}")
        if function_name == "balanceOf":
            return self._balances.get((contract, to_checksum_address(args[0])), 0)
        if function_name == "name":
            return token.name
        if function_name == "version":
            return token.version
        if function_name == "decimals":
            return token.decimals
        if function_name == "authorizationState":
            return (contract, to_checksum_address(args[0]), bytes(args[1])) in self._used
        if function_name == "transferWithAuthorization":
            return self._transfer_with_authorization(contract, token, args, commit, tx_hash)
        raise ContractRevert(f"unknown function {function_name}")

    def _transfer_with_authorization(
        self, contract: str, token: Token, args: Any, commit: bool, tx_hash: str
    ) -> Transfer | None:
        """FiatTokenV2's checks, in its order; state changes only when ``commit``."""
        sender, recipient = to_checksum_address(args[0]), to_checksum_address(args[1])
        value, valid_after, valid_before, nonce = int(args[2]), int(args[3]), int(args[4]), args[5]
        nonce = bytes(nonce)
        if len(args) == 9:
            v, r, s = int(args[6]), bytes(args[7]), bytes(args[8])
            signature = r + s + bytes([v])
        else:
            signature = bytes(args[6])

        now = int(time.time())
        if not now > valid_after:
            raise ContractRevert("FiatTokenV2: authorization is not yet valid")
        if not now < valid_before:
            raise ContractRevert("FiatTokenV2: authorization is expired")
        if (contract, sender, nonce) in self._used:
            raise ContractRevert("FiatTokenV2: authorization is used or canceled")
        if len(signature) != 65 or signature[64] not in (27, 28):
            raise ContractRevert("ECRecover: invalid signature 'v' value")
        if int.from_bytes(signature[32:64], "big") > _SECP256K1_HALF_N:
            raise ContractRevert("ECRecover: invalid signature 's' value")
        domain = {
            "name": token.name,
            "version": token.version,
            "chainId": self.chain_id,
            "verifyingContract": contract,
        }
        message = {
            "from": sender,
            "to": recipient,
            "value": value,
            "validAfter": valid_after,
            "validBefore": valid_before,
            "nonce": nonce,
        }
        if not self._signed_by(
            sender, domain, AUTHORIZATION_TYPES, "TransferWithAuthorization", message, signature
        ):
            raise ContractRevert("FiatTokenV2: invalid signature")
        if self._balances.get((contract, sender), 0) < value:
            raise ContractRevert("ERC20: transfer amount exceeds balance")
        if not commit:
            return None

        self._used.add((contract, sender, nonce))
        self._balances[(contract, sender)] -= value
        self._balances[(contract, recipient)] = self._balances.get((contract, recipient), 0) + value
        transfer = Transfer(
            tx_hash=tx_hash,
            token=contract,
            sender=sender,
            recipient=recipient,
            value=value,
            nonce="0x" + nonce.hex(),
            block_number=self._block_number + 1,
        )
        self._transfers.append(transfer)
        return transfer

    # -- plumbing ----------------------------------------------------------------

    def _try_aggregate(self, function_name: str, args: tuple[Any, ...]) -> list[tuple[bool, bytes]]:
        """Multicall3: run each sub-call as an eth_call; a revert fails only that entry."""
        if function_name == "tryAggregate":
            require_success, calls = bool(args[0]), [(t, d, True) for t, d in args[1]]
        else:  # aggregate3((target, allowFailure, callData)[])
            require_success, calls = False, [(t, d, allow) for t, allow, d in args[0]]
        results: list[tuple[bool, bytes]] = []
        for target, data, allow_failure in calls:
            contract = to_checksum_address(target)
            try:
                if contract not in self._tokens:
                    results.append((True, b""))  # a call to an EOA succeeds, returns nothing
                    continue
                name, inputs, outputs = self._decode_call(bytes(data))
                value = self._execute(contract, name, decode(inputs, bytes(data)[4:]), commit=False)
                results.append((True, encode(outputs, [value]) if outputs else b""))
            except ContractRevert as exc:
                if require_success or not allow_failure:
                    raise
                results.append((False, _ERROR_STRING_SELECTOR + encode(["string"], [exc.reason])))
        return results

    @staticmethod
    def _decode_call(data: bytes) -> tuple[str, list[str], list[str]]:
        entry = _TOKEN_FUNCTIONS.get(bytes(data[:4]))
        if entry is None:
            raise ContractRevert(f"unknown selector 0x{bytes(data[:4]).hex()}")
        return entry

    def _count(self, method: str) -> None:
        with self._lock:
            self.calls[method] += 1

    def _is_contract(self, address: str) -> bool:
        checksummed = to_checksum_address(address)
        return checksummed in self._tokens or checksummed == to_checksum_address(MULTICALL3_ADDRESS)

    def _token_address(self, token: str) -> str:
        address = to_checksum_address(token)
        if address not in self._tokens:
            raise ValueError(f"unknown token {token}")
        return address

    def _new_tx_hash(self) -> str:
        return "0x" + secrets.token_hex(32)

    def _mine(self, tx_hash: str, logs: list[dict[str, Any]]) -> str:
        self._block_number += 1
        self._receipts[tx_hash.lower()] = TransactionReceipt(
            status=1, block_number=self._block_number, tx_hash=tx_hash, logs=logs
        )
        return tx_hash


def _transfer_log(transfer: Transfer) -> dict[str, Any]:
    """The ERC-20 Transfer event the facilitator looks for in the receipt."""

    def topic(address: str) -> str:
        return "0x" + "00" * 12 + address.lower().removeprefix("0x")

    return {
        "address": transfer.token,
        "topics": [TRANSFER_TOPIC, topic(transfer.sender), topic(transfer.recipient)],
        "data": "0x" + transfer.value.to_bytes(32, "big").hex(),
    }


# ---------------------------------------------------------------------------
# The facilitator over HTTP
# ---------------------------------------------------------------------------


class MintRequest(BaseModel):
    """POST /chain/mint body."""

    address: str
    atomic: int = Field(ge=0)


def _checksummed(address: str) -> str:
    if not is_address(address):
        raise HTTPException(status_code=400, detail=f"not an address: {address!r}")
    return to_checksum_address(address)


def facilitator_app(chain: FakeChain | None = None) -> FastAPI:
    """The official ``x402FacilitatorSync`` (exact EVM, v1 and v2) over HTTP, on ``chain``.

    ``/verify`` and ``/settle`` answer 200 with VerifyResponse/SettleResponse JSON (camelCase)
    whatever the verdict, as the SDK's HTTPFacilitatorClient expects; a malformed body or an
    unsupported scheme/network is a 400. ``/chain/*`` is test-only.
    """
    chain = chain or FakeChain()
    facilitator = x402FacilitatorSync()
    register_exact_evm_facilitator(facilitator, chain, networks=BASE_SEPOLIA)

    app = FastAPI(title="x402 fake facilitator", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.chain = chain
    app.state.facilitator = facilitator

    def parse(body: dict[str, Any]) -> tuple[Any, Any]:
        try:
            payload = parse_payment_payload(body["paymentPayload"])
            requirements = parse_payment_requirements(
                payload.x402_version, body["paymentRequirements"]
            )
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise HTTPException(status_code=400, detail=f"invalid request: {exc}") from exc
        return payload, requirements

    def answer(result: Any) -> JSONResponse:
        return JSONResponse(result.model_dump(mode="json", by_alias=True, exclude_none=True))

    @app.get("/supported")
    def supported() -> JSONResponse:
        return answer(facilitator.get_supported())

    @app.post("/verify")
    def verify(body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
        payload, requirements = parse(body)
        try:
            return answer(facilitator.verify(payload, requirements))
        except PaymentError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc

    @app.post("/settle")
    def settle(body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
        payload, requirements = parse(body)
        try:
            return answer(facilitator.settle(payload, requirements))
        except PaymentError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc

    @app.post("/chain/mint")
    def mint(body: MintRequest) -> dict[str, str]:
        address = _checksummed(body.address)
        return {"address": address, "atomic": str(chain.mint(address, body.atomic))}

    @app.get("/chain/balance/{address}")
    def balance(address: str, token: str = USDC_SEPOLIA) -> dict[str, str]:
        try:
            return {"atomic": str(chain.balance_of(_checksummed(address), token))}
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc

    @app.get("/chain/transactions")
    def transactions() -> dict[str, Any]:
        transfers = chain.transfers()
        return {
            "transactions": [t.tx_hash for t in transfers],
            "transfers": [
                {
                    "hash": t.tx_hash,
                    "token": t.token,
                    "from": t.sender,
                    "to": t.recipient,
                    "value": str(t.value),
                    "nonce": t.nonce,
                    "blockNumber": t.block_number,
                }
                for t in transfers
            ],
        }

    @app.get("/chain/calls")
    def calls() -> dict[str, int]:
        return dict(chain.calls)

    return app


# ---------------------------------------------------------------------------
# The paywalled API
# ---------------------------------------------------------------------------

# Short, as in the spec's examples: a signed authorization is a bearer instrument until then.
MAX_TIMEOUT_SECONDS = 60


def paywalled_app(facilitator_url: str, pay_to: str) -> FastAPI:
    """A resource server on the official FastAPI middleware: /cheap ($0.01), /pricey ($6).

    Both are exact-scheme USDC on Base Sepolia paid to ``pay_to``. The middleware fetches
    ``{facilitator_url}/supported`` at startup, so start the facilitator first.
    """
    server = x402ResourceServer(HTTPFacilitatorClient(FacilitatorConfig(url=facilitator_url)))
    server.register(BASE_SEPOLIA, ExactEvmServerScheme())

    def priced(price: str, description: str) -> RouteConfig:
        return RouteConfig(
            accepts=PaymentOption(
                scheme="exact",
                pay_to=pay_to,
                price=price,
                network=BASE_SEPOLIA,
                max_timeout_seconds=MAX_TIMEOUT_SECONDS,
            ),
            description=description,
            mime_type="application/json",
        )

    routes = {
        "GET /cheap": priced("$0.01", "A cheap answer"),
        "GET /pricey": priced("$6", "An answer above AgentWallet's per-call cap"),
    }

    app = FastAPI(title="x402 paywalled API", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(PaymentMiddlewareASGI, routes=routes, server=server)

    @app.get("/cheap")
    def cheap() -> dict[str, str]:
        return {"data": "cheap"}

    @app.get("/pricey")
    def pricey() -> dict[str, str]:
        return {"data": "pricey"}

    return app


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Serve the facilitator or the paywalled API on 127.0.0.1, loopback-only."""
    install_loopback_guard()  # first: nothing below may reach beyond loopback

    parser = argparse.ArgumentParser(prog="python -m wallets.tests.x402_network")
    commands = parser.add_subparsers(dest="command", required=True)
    facilitator = commands.add_parser("facilitator", help="the official facilitator on FakeChain")
    facilitator.add_argument("--port", type=int, required=True)
    server = commands.add_parser("server", help="the paywalled API")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--facilitator", required=True, help="facilitator base URL")
    server.add_argument("--pay-to", required=True, help="payee address")
    args = parser.parse_args(argv)

    import uvicorn

    if args.command == "facilitator":
        app = facilitator_app(FakeChain())
    else:
        app = paywalled_app(args.facilitator.rstrip("/"), to_checksum_address(args.pay_to))
    uvicorn.run(
        app,
        host="127.0.0.1",  # loopback only
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="asyncio",  # not uvloop: its sockets would bypass the loopback guard
    )


if __name__ == "__main__":
    main()
