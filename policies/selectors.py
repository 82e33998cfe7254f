from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import Http404
from djmoney.money import Money

from policies.models import Policy, PolicyChange, PolicyVendorCap, Vendor

if TYPE_CHECKING:
    from wallets.models import Agent


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


def vendor_search(*, query: str = "", kind: str = "") -> QuerySet[Vendor]:
    """The catalogue by name; `query` matches the name, slug, category, an MCC, a
    descriptor or a merchant id (case-insensitive, anywhere); `kind` is "curated",
    "custom" or anything else for both."""
    vendors = vendor_list()
    if kind == "curated":
        vendors = vendors.filter(is_curated=True)
    elif kind == "custom":
        vendors = vendors.filter(is_curated=False)
    if query:
        # The JSON lists as their text, which both databases can search.
        vendors = vendors.annotate(
            mccs_text=Cast("mccs", TextField()),
            descriptors_text=Cast("descriptors", TextField()),
            network_ids_text=Cast("network_ids", TextField()),
        ).filter(
            Q(name__icontains=query)
            | Q(slug__icontains=query)
            | Q(category__icontains=query)
            | Q(mccs_text__contains=query)
            | Q(descriptors_text__icontains=query)
            | Q(network_ids_text__contains=query)
        )
    return vendors


def policy_list_with_agent_counts(*, agents: QuerySet[Agent]) -> QuerySet[Policy]:
    """Every policy, each with `agent_count`: how many of `agents` (the reader's scope)
    use it, counted in the same query."""
    return Policy.objects.annotate(
        agent_count=Count("agents", filter=Q(agents__in=agents), distinct=True)
    ).order_by("name")


def policy_changes_recent(*, policy: Policy, limit: int) -> list[PolicyChange]:
    """The policy's latest changes, newest first."""
    return list(PolicyChange.objects.filter(policy=policy).order_by("-changed_at", "-id")[:limit])
