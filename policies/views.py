"""The portal's policy and vendor pages: every policy with its caps; one policy with the
agents using it, its change history and (with `policies.change_policy`) its edit form;
the vendor catalogue with its search and the Add vendor form.

Forms are parsed by the API's own input serializers (PolicyUpdateInputSerializer,
PolicyCreateInputSerializer, VendorCreateInputSerializer) and written by the same
services, so the portal and the API accept and refuse the same values. A refused form
answers its fragment with the errors beside the fields (status 200 to HTMX, which swaps
no 4xx; 400 to a plain post, as /agents/new/ does) and writes nothing."""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect
from djmoney.money import Money

from agentwallet.portal.htmx import render_page, wants_fragment
from agentwallet.portal.selectors import portal_scope_required
from ledger import whatif
from policies import selectors, services
from policies.models import Policy, PolicyChange, RunawayAction, VendorCategory
from policies.serializers import (
    PolicyCreateInputSerializer,
    PolicyUpdateInputSerializer,
    VendorCreateInputSerializer,
)
from wallets.actors import Actor

AGENTS_PAGE_SIZE = 25
VENDORS_PAGE_SIZE = 50
HISTORY_SHOWN = 50
MAX_CAP_ROWS = 100
Errors = dict[str, list[str]]

# What a policy field is called on the page (and in its history).
LABELS = {
    "name": "Name",
    "description": "Description",
    "daily_cap": "Daily cap (rolling 24 hours)",
    "monthly_cap": "Monthly cap",
    "per_trace_cap": "Per-trace cap",
    "per_authorization_cap": "Per-authorization cap",
    "velocity_per_hour": "Authorizations per hour",
    "x402_allowed": "x402 payments allowed",
    "x402_per_call_cap": "x402 per-call cap",
    "x402_payees": "x402 payees (only these, when set)",
    "unverified_charge_limit": "Charge limit until the principal verifies their email",
    "time_zone": "Time zone",
    "warning_thresholds": "Warning thresholds (% of a cap)",
    "approvals_channel": "Approvals channel (Slack channel id)",
    "bump_valid_hours": "Approved bumps last (hours)",
    "runaway": "When spend runs away",
    "default_vendors": "Default vendors",
    "vendor_caps": "Per-vendor monthly caps",
}
HELP = {
    "daily_cap": "Over any 24 hours, not reset at midnight.",
    "monthly_cap": "Calendar month in the policy's time zone.",
    "per_trace_cap": "Over a trace's whole life (a PR, a deploy), every agent together. "
    "Empty: none.",
    "per_authorization_cap": "Largest single charge. Empty: none.",
    "velocity_per_hour": "Empty: no limit.",
    "x402_per_call_cap": "Needed when x402 is allowed.",
    "unverified_charge_limit": "Largest single charge until the agent's principal follows "
    "the link mailed to them. Empty: no such hold.",
    "time_zone": "IANA name, e.g. Europe/Paris: where the month starts.",
    "warning_thresholds": "Percent, comma-separated: Slack hears once per cap and window.",
    "approvals_channel": "e.g. C0FINANCE. Empty: the default channel.",
    "bump_valid_hours": "Empty: until the end of the policy's day.",
    "runaway": "An agent spending far above its usual hourly rate: tell Slack, or also "
    "freeze its cards (the kill switch).",
}
GROUPS = (
    ("Caps", ("daily_cap", "monthly_cap", "per_trace_cap", "per_authorization_cap")),
    (
        "Limits and x402",
        (
            "velocity_per_hour",
            "unverified_charge_limit",
            "runaway",
            "x402_allowed",
            "x402_per_call_cap",
        ),
    ),
    ("Approvals and warnings", ("warning_thresholds", "approvals_channel", "bump_valid_hours")),
    ("About", ("name", "time_zone", "description")),
)
MONEY_FIELDS = services.CAP_FIELDS
REQUIRED_MONEY = ("daily_cap", "monthly_cap")
INTEGER_FIELDS = ("velocity_per_hour", "bump_valid_hours")
TEXT_FIELDS = ("name", "description", "time_zone", "approvals_channel")
CHOICE_FIELDS = {"runaway": RunawayAction.choices}
_SEPARATORS = re.compile(r"[\s,]+")


def _require(request, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"This needs the {permission} permission.")


@functools.cache
def _time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def _split(value: str) -> list[str]:
    """Items separated by commas or white space."""
    return [item for item in _SEPARATORS.split(value.strip()) if item]


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _amount(money: Money | None) -> str:
    return "" if money is None else f"{money.amount:.2f}"


def _money(value: str, currency: str) -> dict[str, str]:
    return {"amount": value, "currency": currency}


def _messages(detail: Any, items: list[str] | None = None) -> list[str]:
    """DRF error detail as plain sentences; a list's item errors name the item."""
    if isinstance(detail, Mapping):
        found = []
        for key, value in detail.items():
            prefix = ""
            if items is not None and isinstance(key, int) and 0 <= key < len(items):
                prefix = f"“{items[key]}”: "
            found += [prefix + message for message in _messages(value)]
        return found
    if isinstance(detail, list | tuple):
        return [message for value in detail for message in _messages(value)]
    return [str(detail)]


def _service_errors(exc: DjangoValidationError) -> Errors:
    if hasattr(exc, "error_dict"):
        return {
            ("" if key == "__all__" else key): list(found)
            for key, found in exc.message_dict.items()
        }
    return {"": list(exc.messages)}


def _general(errors: Errors, fields: Any) -> list[str]:
    """The messages no field of the form shows."""
    return [message for name, found in errors.items() if name not in fields for message in found]


# The policy form ----------------------------------------------------------------------


@dataclass
class FormField:
    name: str
    label: str
    value: str
    errors: list[str]
    help: str = ""
    money: bool = False
    required: bool = False
    textarea: bool = False
    checkbox: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)  # a select's options
    shown: str = ""  # read-only: the value as a reader sees it


@dataclass
class CapRow:
    index: int
    vendor: str = ""  # slug; empty: a blank row (to add one)
    vendor_name: str = ""
    amount: str = ""
    remove: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class PolicyForm:
    """The edit form's values as typed (to show them again) and its errors by field."""

    policy: Policy
    values: dict[str, str]
    x402_allowed: bool
    default_vendors: set[str]
    cap_rows: list[CapRow]
    errors: Errors = field(default_factory=dict)
    default_vendor_names: list[str] = field(default_factory=list)

    @classmethod
    def initial(cls, policy: Policy) -> PolicyForm:
        values = {name: _amount(getattr(policy, name)) for name in MONEY_FIELDS}
        values |= {name: getattr(policy, name) or "" for name in (*TEXT_FIELDS, *CHOICE_FIELDS)}
        values |= {
            name: "" if getattr(policy, name) is None else str(getattr(policy, name))
            for name in INTEGER_FIELDS
        }
        values["warning_thresholds"] = ", ".join(str(t) for t in policy.warning_thresholds)
        caps = [
            CapRow(
                index=index,
                vendor=cap.vendor.slug,
                vendor_name=cap.vendor.name,
                amount=_amount(cap.monthly_cap),
            )
            for index, cap in enumerate(policy.vendor_caps.all())
        ]
        defaults = sorted(policy.default_vendors.all(), key=lambda vendor: vendor.name)
        return cls(
            policy=policy,
            values=values,
            x402_allowed=policy.x402_allowed,
            default_vendors={vendor.slug for vendor in defaults},
            cap_rows=[*caps, CapRow(index=len(caps))],
            default_vendor_names=[vendor.name for vendor in defaults],
        )

    @classmethod
    def posted(cls, policy: Policy, post: Any) -> PolicyForm:
        values = {
            name: post.get(name, "").strip()
            for name in (*MONEY_FIELDS, *TEXT_FIELDS, *CHOICE_FIELDS)
        }
        values |= {name: post.get(name, "").strip() for name in INTEGER_FIELDS}
        values["warning_thresholds"] = post.get("warning_thresholds", "").strip()
        try:
            count = min(max(int(post.get("cap_rows", "0")), 0), MAX_CAP_ROWS)
        except ValueError:
            count = 0
        rows = [
            CapRow(
                index=index,
                vendor=post.get(f"cap-{index}-vendor", "").strip(),
                amount=post.get(f"cap-{index}-amount", "").strip(),
                remove=bool(post.get(f"cap-{index}-remove")),
            )
            for index in range(count)
        ]
        return cls(
            policy=policy,
            values=values,
            x402_allowed=bool(post.get("x402_allowed")),
            default_vendors=set(post.getlist("default_vendors")),
            cap_rows=rows,
        )

    def kept_rows(self) -> list[CapRow]:
        """The vendor caps the form keeps: neither removed nor left blank."""
        return [row for row in self.cap_rows if not row.remove and (row.vendor or row.amount)]

    def changes(self) -> dict[str, Any] | None:
        """The changes for policy_update, validated by the API's PATCH serializer; None
        (and `errors` filled) when a value is refused."""
        currency = self.policy.currency
        values = self.values
        thresholds = _split(values["warning_thresholds"])
        data: dict[str, Any] = {name: values[name] for name in (*TEXT_FIELDS, *CHOICE_FIELDS)}
        data |= {
            name: _money(values[name], currency) if values[name] or name in REQUIRED_MONEY else None
            for name in MONEY_FIELDS
        }
        data |= {name: values[name] or None for name in INTEGER_FIELDS}
        data["x402_allowed"] = self.x402_allowed
        data["warning_thresholds"] = thresholds
        data["default_vendors"] = sorted(self.default_vendors)
        kept = self.kept_rows()
        for row in kept:
            if not row.vendor:
                row.errors.append("Choose a vendor.")
        data["vendor_caps"] = [
            {"vendor": row.vendor, "monthly_cap": _money(row.amount, currency)} for row in kept
        ]
        serializer = PolicyUpdateInputSerializer(
            data=data, context={"policy": self.policy}, partial=True
        )
        if serializer.is_valid() and not any(row.errors for row in kept):
            return dict(serializer.validated_data)
        for name, detail in serializer.errors.items():
            if name == "vendor_caps":
                self._vendor_cap_errors(kept, detail)
            else:
                key = "" if name == "non_field_errors" else name
                items = thresholds if name == "warning_thresholds" else None
                self.errors[key] = _messages(detail, items)
        return None

    def _vendor_cap_errors(self, kept: list[CapRow], detail: Any) -> None:
        """A row's errors beside it; the list's own (a vendor twice) below the rows. DRF
        keys the rows' errors by index (a dict when partial, else a list)."""
        by_row = detail.items() if isinstance(detail, Mapping) else enumerate(detail)
        general: list[str] = []
        for index, item in by_row:
            if isinstance(item, Mapping) and isinstance(index, int) and index < len(kept):
                kept[index].errors += _messages(item)
            else:
                general += _messages(item)
        if general:
            self.errors["vendor_caps"] = general

    @property
    def has_errors(self) -> bool:
        return bool(self.errors) or any(row.errors for row in self.cap_rows)

    @property
    def general_errors(self) -> list[str]:
        return _general(self.errors, LABELS)

    def groups(self) -> list[tuple[str, list[FormField]]]:
        return [(title, [self._field(name) for name in names]) for title, names in GROUPS]

    def _field(self, name: str) -> FormField:
        if name == "x402_allowed":
            allowed = self.x402_allowed
            return FormField(
                name=name,
                label=LABELS[name],
                value="1" if allowed else "",
                errors=self.errors.get(name, []),
                help="Agents may pay HTTP 402 (x402) requests, each up to the per-call cap.",
                checkbox=True,
                shown="yes" if allowed else "no",
            )
        value = self.values[name]
        money = name in MONEY_FIELDS
        if name in CHOICE_FIELDS:
            labels = dict(CHOICE_FIELDS[name])
            return FormField(
                name=name,
                label=LABELS[name],
                value=value,
                errors=self.errors.get(name, []),
                help=HELP.get(name, ""),
                choices=list(CHOICE_FIELDS[name]),
                shown=str(labels.get(value, value)),
            )
        if money:
            shown = f"{value} {self.policy.currency}" if value else "none"
        elif name == "warning_thresholds":
            shown = ", ".join(f"{t}%" for t in _split(value)) or "none"
        elif name == "bump_valid_hours":
            shown = f"{value} hours" if value else "until the end of the policy's day"
        elif name == "approvals_channel":
            shown = value or "the default channel"
        else:
            shown = value or "none"
        return FormField(
            name=name,
            label=LABELS[name],
            value=value,
            errors=self.errors.get(name, []),
            help=HELP.get(name, ""),
            money=money,
            required=name in (*REQUIRED_MONEY, "name", "time_zone"),
            textarea=name == "description",
            shown=shown,
        )


def _show_value(name: str, value: Any) -> str:
    """A PolicyChange value (JSON) as the history shows it."""
    if value is None:
        return "none"
    if isinstance(value, Mapping) and set(value) == {"amount", "currency"}:
        return f"{value['amount']} {value['currency']}"
    if isinstance(value, Mapping):
        return ", ".join(f"{slug} {amount}" for slug, amount in sorted(value.items())) or "none"
    if isinstance(value, list):
        if name == "warning_thresholds":
            return ", ".join(f"{item}%" for item in value) or "none"
        return ", ".join(str(item) for item in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if value != "" else "empty"


@dataclass
class HistoryRow:
    change: PolicyChange
    label: str
    old: str
    new: str


def _history(policy: Policy) -> list[HistoryRow]:
    return [
        HistoryRow(
            change=change,
            label=LABELS.get(change.field, change.field),
            old=_show_value(change.field, change.old_value),
            new=_show_value(change.field, change.new_value),
        )
        for change in selectors.policy_changes_recent(policy=policy, limit=HISTORY_SHOWN)
    ]


# Policies -----------------------------------------------------------------------------


@dataclass
class NewPolicyForm:
    values: dict[str, str] = field(
        default_factory=lambda: {
            "slug": "",
            "name": "",
            "currency": "USD",
            "daily_cap": "",
            "monthly_cap": "",
        }
    )
    errors: Errors = field(default_factory=dict)

    @classmethod
    def posted(cls, post: Any) -> NewPolicyForm:
        form = cls()
        form.values = {name: post.get(name, "").strip() for name in form.values}
        form.values["currency"] = form.values["currency"].upper()
        return form

    def data(self) -> dict[str, Any] | None:
        values = self.values
        serializer = PolicyCreateInputSerializer(
            data={
                "slug": values["slug"],
                "name": values["name"],
                "currency": values["currency"],
                "daily_cap": _money(values["daily_cap"], values["currency"]),
                "monthly_cap": _money(values["monthly_cap"], values["currency"]),
            }
        )
        if serializer.is_valid():
            return dict(serializer.validated_data)
        self.errors = {
            ("" if name == "non_field_errors" else name): _messages(detail)
            for name, detail in serializer.errors.items()
        }
        return None

    @property
    def general_errors(self) -> list[str]:
        return _general(self.errors, self.values)


@login_required
def policy_list(request) -> HttpResponse:
    """Every policy (they are org-wide) with its caps and how many agents in the user's
    scope use it; a "New policy" form for those who may add one."""
    scope = portal_scope_required(user=request.user)
    new = NewPolicyForm()
    if request.method == "POST":
        _require(request, "policies.add_policy")
        new = NewPolicyForm.posted(request.POST)
        data = new.data()
        if data is not None:
            try:
                policy = services.policy_create(**data, actor=Actor.for_user(request.user))
            except DjangoValidationError as exc:
                new.errors = _service_errors(exc)
            else:
                done = f"Created the policy {policy.name}: set its other caps and vendors here."
                messages.success(request, done)
                url = reverse("portal-policy", args=[policy.slug])
                return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
        if request.htmx:
            return render(request, "policies/_policy_new.html", {"new": new})
    context = {
        "policies": list(selectors.policy_list_with_agent_counts(agents=scope.agents())),
        "scope": scope,
        "new": new,
        "may_add": request.user.has_perm("policies.add_policy"),
    }
    status = 400 if new.errors else 200
    return render_page(request, "policies/_policy_rows.html", "policies/list.html", context, status)


@login_required
def policy_detail(request, slug: str) -> HttpResponse:
    """One policy: its values (a form with Save for `policies.change_policy`), the agents
    in the user's scope using it, page by page, and its change history. An HTMX get (the
    agents' pager) answers the agents only; an HTMX save answers the settings (and the
    history, out of band)."""
    scope = portal_scope_required(user=request.user)
    policy = selectors.policy_get_by_slug(slug=slug)
    form = PolicyForm.initial(policy)
    saved = ""
    if request.method == "POST":
        _require(request, "policies.change_policy")
        form = PolicyForm.posted(policy, request.POST)
        saved = _policy_save(request, form)
        if saved and not request.htmx:
            messages.success(request, saved)
            return redirect("portal-policy", slug=policy.slug)
        if saved:
            policy = selectors.policy_get_by_slug(slug=slug)
            form = PolicyForm.initial(policy)
    context: dict[str, Any] = {"policy": policy, "scope": scope}
    if request.method == "POST" or not wants_fragment(request):
        context |= {
            "form": form,
            "may_edit": request.user.has_perm("policies.change_policy"),
            "saved": saved,
            "history": _history(policy),
            "history_shown": HISTORY_SHOWN,
            "vendors": selectors.vendor_list(),
            "time_zones": _time_zones(),
        }
    if request.method == "POST" and request.htmx:
        return render(request, "policies/_policy_settings.html", context | {"oob": bool(saved)})
    context["agents"] = _agents_page(request, scope, policy)
    status = 400 if form.has_errors else 200
    return render_page(
        request, "policies/_policy_agents.html", "policies/detail.html", context, status
    )


@login_required
@require_POST
def policy_what_if(request, slug: str) -> HttpResponse:
    """The edit form's values as a draft, replayed over the policy's agents' last 30 days
    of authorizations (ledger.whatif): what they would have declined. Saves nothing."""
    portal_scope_required(user=request.user)
    _require(request, "policies.change_policy")
    policy = selectors.policy_get_by_slug(slug=slug)
    form = PolicyForm.posted(policy, request.POST)
    changes = form.changes()
    context: dict[str, Any] = {"policy": policy, "form": form, "days": whatif.WHAT_IF_DAYS}
    if changes is not None:
        until = timezone.now()
        context["result"] = whatif.policy_what_if(
            policy=policy,
            changes=changes,
            since=until - timedelta(days=whatif.WHAT_IF_DAYS),
            until=until,
        ).as_json()
    status = 200 if changes is not None or request.htmx else 400
    return render_page(request, "policies/_what_if.html", "policies/what_if.html", context, status)


def _policy_save(request, form: PolicyForm) -> str:
    """Save the form through policy_update; what to tell the user, or "" when a value
    was refused (the form then holds the errors, and nothing was written)."""
    changes = form.changes()
    if changes is None:
        return ""
    now = timezone.now()
    try:
        services.policy_update(
            policy=form.policy, changes=changes, actor=Actor.for_user(request.user), now=now
        )
    except DjangoValidationError as exc:
        form.errors = _service_errors(exc)
        return ""
    changed = PolicyChange.objects.filter(policy=form.policy, changed_at=now).values_list(
        "field", flat=True
    )
    names = [LABELS.get(name, name).split(" (")[0].lower() for name in changed]
    if not names:
        return "Saved: nothing changed."
    return "Saved: " + ", ".join(sorted(names)) + "."


def _agents_page(request, scope, policy: Policy):
    agents = scope.agents().filter(policy=policy).select_related("principal").order_by("name", "pk")
    return Paginator(agents, AGENTS_PAGE_SIZE).get_page(request.GET.get("page"))


# Vendors ------------------------------------------------------------------------------


@dataclass
class VendorForm:
    values: dict[str, str] = field(
        default_factory=lambda: {
            "slug": "",
            "name": "",
            "category": VendorCategory.OTHER,
            "mccs": "",
            "descriptors": "",
            "network_ids": "",
            "currencies": "USD",
        }
    )
    descriptor_lock: bool = True
    merchant_id_lock: bool = True
    errors: Errors = field(default_factory=dict)

    @classmethod
    def posted(cls, post: Any) -> VendorForm:
        form = cls(
            descriptor_lock=bool(post.get("descriptor_lock")),
            merchant_id_lock=bool(post.get("merchant_id_lock")),
        )
        form.values = {name: post.get(name, "").strip() for name in form.values}
        return form

    def data(self) -> dict[str, Any] | None:
        """vendor_create's arguments, validated by the API's serializer."""
        values = self.values
        items = {
            "mccs": _split(values["mccs"]),
            "descriptors": _lines(values["descriptors"]),
            "network_ids": _split(values["network_ids"]),
            "currencies": [code.upper() for code in _split(values["currencies"])],
        }
        data: dict[str, Any] = {
            "slug": values["slug"],
            "name": values["name"],
            "category": values["category"],
            "descriptor_lock": self.descriptor_lock,
            "merchant_id_lock": self.merchant_id_lock,
            **items,
        }
        if not items["currencies"]:
            del data["currencies"]  # the serializer's default: USD
        serializer = VendorCreateInputSerializer(data=data)
        if serializer.is_valid():
            return dict(serializer.validated_data)
        self.errors = {
            ("" if name == "non_field_errors" else name): _messages(detail, items.get(name))
            for name, detail in serializer.errors.items()
        }
        return None

    @property
    def general_errors(self) -> list[str]:
        return _general(self.errors, (*self.values, "descriptor_lock", "merchant_id_lock"))


def _vendor_context(request) -> dict[str, Any]:
    query = request.GET.get("q", "").strip()[:100]
    kind = request.GET.get("kind", "")
    vendors = selectors.vendor_search(query=query, kind=kind)
    return {
        "page": Paginator(vendors, VENDORS_PAGE_SIZE).get_page(request.GET.get("page")),
        "query": query,
        "kind": kind if kind in ("curated", "custom") else "",
    }


@login_required
def vendor_list(request) -> HttpResponse:
    """The curated catalogue and the vendors added here or through the API, searched;
    "Add vendor" for those with `policies.add_vendor`."""
    portal_scope_required(user=request.user)
    form = VendorForm()
    if request.method == "POST":
        _require(request, "policies.add_vendor")
        form = VendorForm.posted(request.POST)
        data = form.data()
        if data is not None:
            try:
                vendor = services.vendor_create(**data, actor=Actor.for_user(request.user))
            except DjangoValidationError as exc:
                form.errors = _service_errors(exc)
            else:
                messages.success(request, f"Added the vendor {vendor.name} ({vendor.slug}).")
                url = f"{reverse('portal-vendors')}?q={vendor.slug}"
                return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
        if request.htmx:
            context = {"form": form, "categories": VendorCategory.choices}
            return render(request, "policies/_vendor_add.html", context)
    context = _vendor_context(request) | {
        "form": form,
        "may_add": request.user.has_perm("policies.add_vendor"),
        "categories": VendorCategory.choices,
    }
    status = 400 if form.errors else 200
    return render_page(
        request, "policies/_vendor_rows.html", "policies/vendor_list.html", context, status
    )
