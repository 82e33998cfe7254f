from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentwallet.api.fields import validate_input
from agentwallet.api.schema import STAFF_ONLY
from policies import selectors, services
from policies.serializers import (
    PolicyCreateInputSerializer,
    PolicyOutputSerializer,
    PolicyUpdateInputSerializer,
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
