from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404
from djmoney.money import Money

from policies.models import Policy, PolicyVendorCap, Vendor


def vendor_list() -> QuerySet[Vendor]:
    return Vendor.objects.order_by("name")


def vendor_get_by_slug(*, slug: str) -> Vendor:
    try:
        return Vendor.objects.get(slug=slug)
    except Vendor.DoesNotExist as exc:
        raise Http404("No such vendor.") from exc


def policy_list() -> QuerySet[Policy]:
    return Policy.objects.prefetch_related("default_vendors", "vendor_caps__vendor")


def policy_get_by_slug(*, slug: str) -> Policy:
    try:
        return policy_list().get(slug=slug)
    except Policy.DoesNotExist as exc:
        raise Http404("No such policy.") from exc


def policy_vendor_caps(*, policy: Policy) -> dict[int, Money]:
    return {cap.vendor_id: cap.monthly_cap for cap in PolicyVendorCap.objects.filter(policy=policy)}
