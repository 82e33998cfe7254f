"""Writes of the ledger: the authorization decision (`authorization`), what follows it
(`postings`) and the spend counters derived from both (`counters`)."""

from ledger.services.authorization import (
    AuthorizationOutcome,
    AuthorizationRequest,
    CapStop,
    Decided,
    authorization_decide,
)
from ledger.services.counters import (
    counters_check,
    counters_prune,
    counters_rebuild,
    month_counter_zones_keep,
    month_counters_recut,
    month_counters_recut_pending,
)
from ledger.services.postings import (
    NotFoundError,
    PostingOutcome,
    authorization_capture,
    authorization_expire,
    authorization_increment,
    authorization_record_unasked,
    authorization_reverse,
    capture_without_authorization,
    holds_expire,
    refund_record,
)

__all__ = [
    "AuthorizationOutcome",
    "AuthorizationRequest",
    "CapStop",
    "Decided",
    "NotFoundError",
    "PostingOutcome",
    "authorization_capture",
    "authorization_decide",
    "authorization_expire",
    "authorization_increment",
    "authorization_record_unasked",
    "authorization_reverse",
    "capture_without_authorization",
    "counters_check",
    "counters_prune",
    "counters_rebuild",
    "holds_expire",
    "month_counter_zones_keep",
    "month_counters_recut",
    "month_counters_recut_pending",
    "refund_record",
]
