from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentwallet.api.fields import validate_input
from agentwallet.api.schema import STAFF_ONLY
from ledger.whatif import WHAT_IF_DAYS, WHAT_IF_MAX_DAYS, policy_what_if
from policies import selectors, services
from policies.serializers import (
    PolicyCreateInputSerializer,
    PolicyOutputSerializer,
    PolicyUpdateInputSerializer,
    PolicyWhatIfInputSerializer,
    PolicyWhatIfOutputSerializer,
    VendorCreateInputSerializer,
    VendorOutputSerializer,
)
from wallets.actors import actor_from_request
from wallets.permissions import IsAuthenticatedActor, IsStaffActor


class VendorListCreateApi(APIView):
    """The vendor catalogue; any key may read it, staff add to it."""

    def get_permissions(self) -> list[Any]:
        return [IsStaffActor()] if self.request.method == "POST" else [IsAuthenticatedActor()]

    @extend_schema(operation_id="vendors_list", responses=VendorOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(VendorOutputSerializer(selectors.vendor_list(), many=True).data)

    @extend_schema(
        operation_id="vendors_create",
        request=VendorCreateInputSerializer,
        responses={201: VendorOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validate_input(VendorCreateInputSerializer, request.data)
        vendor = services.vendor_create(**data, actor=actor_from_request(request))
        return Response(VendorOutputSerializer(vendor).data, status=status.HTTP_201_CREATED)


class PolicyListCreateApi(APIView):
    permission_classes = [IsStaffActor]

    @extend_schema(
        operation_id="policies_list",
        responses={200: PolicyOutputSerializer(many=True), 403: STAFF_ONLY},
    )
    def get(self, request: Request) -> Response:
        return Response(PolicyOutputSerializer(selectors.policy_list(), many=True).data)

    @extend_schema(
        operation_id="policies_create",
        request=PolicyCreateInputSerializer,
        responses={201: PolicyOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validate_input(PolicyCreateInputSerializer, request.data)
        policy = services.policy_create(**data, actor=actor_from_request(request))
        policy = selectors.policy_get_by_slug(slug=policy.slug)
        return Response(PolicyOutputSerializer(policy).data, status=status.HTTP_201_CREATED)


class PolicyDetailApi(APIView):
    permission_classes = [IsStaffActor]

    @extend_schema(
        operation_id="policies_retrieve", responses={200: PolicyOutputSerializer, 403: STAFF_ONLY}
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(PolicyOutputSerializer(selectors.policy_get_by_slug(slug=slug)).data)

    @extend_schema(
        operation_id="policies_update",
        request=PolicyUpdateInputSerializer,
        responses=PolicyOutputSerializer,
    )
    def patch(self, request: Request, slug: str) -> Response:
        policy = selectors.policy_get_by_slug(slug=slug)
        changes = validate_input(
            PolicyUpdateInputSerializer, request.data, context={"policy": policy}, partial=True
        )
        services.policy_update(policy=policy, changes=changes, actor=actor_from_request(request))
        return Response(PolicyOutputSerializer(selectors.policy_get_by_slug(slug=slug)).data)


class PolicyWhatIfApi(APIView):
    """The policy's agents' authorizations of a period replayed under a draft of the
    policy: what it would have declined, against what was. Writes nothing."""

    permission_classes = [IsStaffActor]

    @extend_schema(
        operation_id="policies_what_if",
        request=PolicyWhatIfInputSerializer,
        responses={200: PolicyWhatIfOutputSerializer, 403: STAFF_ONLY},
    )
    def post(self, request: Request, slug: str) -> Response:
        policy = selectors.policy_get_by_slug(slug=slug)
        data = validate_input(PolicyWhatIfInputSerializer, request.data)
        draft = PolicyUpdateInputSerializer(
            data=data["draft"], context={"policy": policy}, partial=True
        )
        if not draft.is_valid():
            raise ValidationError({"draft": draft.errors})
        until = data.get("until") or timezone.now()
        since = data.get("since") or until - timedelta(days=WHAT_IF_DAYS)
        if since >= until:
            raise ValidationError({"since": ["Must be before until."]})
        if until - since > timedelta(days=WHAT_IF_MAX_DAYS):
            raise ValidationError({"since": [f"At most {WHAT_IF_MAX_DAYS} days before until."]})
        result = policy_what_if(
            policy=policy, changes=dict(draft.validated_data), since=since, until=until
        )
        return Response(PolicyWhatIfOutputSerializer(result.as_json()).data)
