"""Writes for vendors and policies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from djmoney.money import Money
from eth_utils import to_checksum_address

from agentwallet.audit import audit_record
from agentwallet.lib.money import money_json
from agentwallet.lib.timewindows import is_valid_time_zone
from agentwallet.models import AuditAction
from policies.models import Policy, PolicyChange, PolicyVendorCap, Vendor, VendorCategory
from policies.signals import policy_time_zone_changed
from wallets.actors import Actor

# Until the principal verifies their email, one charge of their agents' cards is at most
# this much (in the policy's currency), unless the policy says otherwise.
DEFAULT_UNVERIFIED_CHARGE_LIMIT = Decimal("25.00")
CAP_FIELDS = (
    "daily_cap",
    "monthly_cap",
    "per_trace_cap",
    "per_authorization_cap",
    "x402_per_call_cap",
    "unverified_charge_limit",
)
RELATED_FIELDS = ("default_vendors", "vendor_caps")
PLAIN_FIELDS = (
    "name",
    "description",
    "velocity_per_hour",
    "x402_allowed",
    "time_zone",
    "warning_thresholds",
    "approvals_channel",
    "bump_valid_hours",
    "runaway",
    "x402_payees",
)


def _addresses(addresses: Iterable[str]) -> list[str]:
    """EVM addresses checksummed, each once, in order (x402 payees)."""
    return list(dict.fromkeys(to_checksum_address(address) for address in addresses))


def _clean_mccs(mccs: Iterable[str]) -> list[str]:
    cleaned = []
    for mcc in mccs:
        if not (isinstance(mcc, str) and len(mcc) == 4 and mcc.isdigit()):
            raise ValidationError({"mccs": f"{mcc!r} is not a 4-digit merchant category code."})
        if mcc not in cleaned:
            cleaned.append(mcc)
    return cleaned


@transaction.atomic
def vendor_create(
    *,
    slug: str,
    name: str,
    mccs: Iterable[str],
    category: str = VendorCategory.OTHER,
    descriptors: Iterable[str] = (),
    network_ids: Iterable[str] = (),
    descriptor_lock: bool = True,
    merchant_id_lock: bool = True,
    currencies: Iterable[str] = ("USD",),
    x402_pay_to: Iterable[str] = (),
    is_curated: bool = False,
    actor: Actor | None = None,
) -> Vendor:
    """Add a vendor. With an `actor` (a person, through the API or portal) it is audited;
    the catalogue loader passes none."""
    mcc_list = _clean_mccs(mccs)
    if not mcc_list:
        raise ValidationError({"mccs": "A vendor needs at least one merchant category code."})
    if Vendor.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"A vendor with slug {slug!r} already exists."})
    vendor = Vendor(
        slug=slug,
        name=name,
        category=category,
        mccs=mcc_list,
        descriptors=list(descriptors),
        network_ids=list(network_ids),
        descriptor_lock=descriptor_lock,
        merchant_id_lock=merchant_id_lock,
        currencies=list(currencies),
        x402_pay_to=_addresses(x402_pay_to),
        is_curated=is_curated,
    )
    vendor.full_clean()
    vendor.save()
    if actor is not None:
        audit_record(
            actor=actor.label,
            action=AuditAction.VENDOR_CREATED,
            subject=f"vendor {vendor.name} ({vendor.slug})",
            object_id=vendor.pk,
            detail={
                "mccs": mcc_list,
                "descriptors": vendor.descriptors,
                "network_ids": vendor.network_ids,
            },
        )
    return vendor


def _cap(value: Decimal | None, currency: str) -> Money | None:
    return None if value is None else Money(value, currency)


def _set_vendor_caps(policy: Policy, vendor_caps: Mapping[Vendor, Decimal]) -> None:
    PolicyVendorCap.objects.filter(policy=policy).exclude(vendor__in=list(vendor_caps)).delete()
    for vendor, amount in vendor_caps.items():
        PolicyVendorCap.objects.update_or_create(
            policy=policy, vendor=vendor, defaults={"monthly_cap": Money(amount, policy.currency)}
        )


def _validate_policy(policy: Policy) -> None:
    if not is_valid_time_zone(policy.time_zone):
        raise ValidationError({"time_zone": f"Unknown time zone {policy.time_zone!r}."})
    if policy.x402_allowed and policy.x402_per_call_cap is None:
        raise ValidationError({"x402_per_call_cap": "Needed when x402 is allowed."})
    if policy.daily_cap.amount > policy.monthly_cap.amount:
        raise ValidationError({"daily_cap": "The daily cap cannot exceed the monthly cap."})
    policy.full_clean(exclude=["default_vendors"])


@transaction.atomic
def policy_create(
    *,
    slug: str,
    name: str,
    currency: str,
    daily_cap: Decimal,
    monthly_cap: Decimal,
    per_trace_cap: Decimal | None = None,
    per_authorization_cap: Decimal | None = None,
    velocity_per_hour: int | None = None,
    x402_allowed: bool = False,
    x402_per_call_cap: Decimal | None = None,
    x402_payees: Iterable[str] = (),
    unverified_charge_limit: Decimal | None = DEFAULT_UNVERIFIED_CHARGE_LIMIT,
    time_zone: str = "UTC",
    description: str = "",
    default_vendors: Iterable[Vendor] = (),
    vendor_caps: Mapping[Vendor, Decimal] | None = None,
    warning_thresholds: Iterable[int] = (80, 95),
    approvals_channel: str = "",
    bump_valid_hours: int | None = None,
    runaway: str = "notify",
    actor: Actor | None = None,
) -> Policy:
    """Create a policy; every amount is in `currency`, the policy's cap currency. Audited
    when a person (`actor`) creates it. A new policy holds an unverified principal's
    agents to small charges unless told otherwise (`unverified_charge_limit=None`)."""
    if Policy.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"A policy with slug {slug!r} already exists."})
    policy = Policy(
        slug=slug,
        name=name,
        description=description,
        currency=currency,
        daily_cap=Money(daily_cap, currency),
        monthly_cap=Money(monthly_cap, currency),
        per_trace_cap=_cap(per_trace_cap, currency),
        per_authorization_cap=_cap(per_authorization_cap, currency),
        velocity_per_hour=velocity_per_hour,
        x402_allowed=x402_allowed,
        x402_per_call_cap=_cap(x402_per_call_cap, currency),
        x402_payees=_addresses(x402_payees),
        unverified_charge_limit=_cap(unverified_charge_limit, currency),
        time_zone=time_zone,
        warning_thresholds=sorted(set(warning_thresholds)),
        approvals_channel=approvals_channel,
        bump_valid_hours=bump_valid_hours,
        runaway=runaway,
    )
    _validate_policy(policy)
    policy.save()
    policy.default_vendors.set(list(default_vendors))
    _set_vendor_caps(policy, vendor_caps or {})
    if actor is not None:
        audit_record(
            actor=actor.label,
            action=AuditAction.POLICY_CREATED,
            subject=f"policy {policy.name} ({policy.slug})",
            object_id=policy.slug,
            detail={
                "currency": currency,
                "daily_cap": str(daily_cap),
                "monthly_cap": str(monthly_cap),
            },
        )
    return policy


@transaction.atomic
def policy_update(
    *,
    policy: Policy,
    changes: Mapping[str, Any],
    actor: Actor,
    now: datetime | None = None,
) -> Policy:
    """Apply a partial update and record every field it changed, from what to what
    (PolicyChange), in the same transaction. Caps stay in the policy's currency, which
    cannot change. A new time zone moves the calendar months: the ledger's month
    counters follow it (`policy_time_zone_changed`)."""
    now = now or timezone.now()
    policy = Policy.objects.select_for_update().get(pk=policy.pk)
    audited = [field for field in (*PLAIN_FIELDS, *CAP_FIELDS, *RELATED_FIELDS) if field in changes]
    before = {field: _audit_value(policy, field) for field in audited}
    updated: list[str] = []
    for field in PLAIN_FIELDS:
        if field in changes:
            value = changes[field]
            setattr(policy, field, _addresses(value) if field == "x402_payees" else value)
            updated.append(field)
    for field in CAP_FIELDS:
        if field in changes:
            setattr(policy, field, _cap(changes[field], policy.currency))
            updated += [field, f"{field}_currency"]
    _validate_policy(policy)
    if updated:
        policy.save(update_fields=[*updated, "updated_at"])
    if "default_vendors" in changes:
        policy.default_vendors.set(list(changes["default_vendors"]))
    if "vendor_caps" in changes:
        _set_vendor_caps(policy, changes["vendor_caps"])
    after = {field: _audit_value(policy, field) for field in audited}
    changed = [field for field in audited if before[field] != after[field]]
    PolicyChange.objects.bulk_create(
        PolicyChange(
            policy=policy,
            actor=actor.label,
            field=field,
            old_value=before[field],
            new_value=after[field],
            changed_at=now,
        )
        for field in changed
    )
    if changed:
        audit_record(
            actor=actor.label,
            action=AuditAction.POLICY_CHANGED,
            subject=f"policy {policy.name} ({policy.slug})",
            object_id=policy.slug,
            detail={field: {"from": before[field], "to": after[field]} for field in changed},
        )
    if before.get("time_zone", policy.time_zone) != policy.time_zone:
        policy_time_zone_changed.send(
            sender=Policy, policy=policy, old_time_zone=before["time_zone"]
        )
    return policy


def _audit_value(policy: Policy, field: str) -> Any:
    """A field's value as the audit row keeps it (JSON)."""
    if field in CAP_FIELDS:
        return money_json(getattr(policy, field))
    if field == "default_vendors":
        return sorted(policy.default_vendors.values_list("slug", flat=True))
    if field == "vendor_caps":
        return {
            cap.vendor.slug: str(cap.monthly_cap.amount)
            for cap in policy.vendor_caps.select_related("vendor")
        }
    value = getattr(policy, field)
    return list(value) if isinstance(value, list | tuple) else value
