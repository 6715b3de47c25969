"""ModelRegistry servicer: parse names, convert, call the use case, convert back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import grpc
from google.protobuf import empty_pb2, timestamp_pb2

from modelregistry.v1 import model_registry_pb2 as rpc
from modelregistry.v1 import model_registry_pb2_grpc as rpc_grpc
from modelregistry.v1 import resources_pb2 as pb

from ..domain import names
from ..domain.entities import AliasMove
from ..domain.errors import InvalidArgument
from ..domain.fields import MODEL_FIELDS, VERSION_FIELDS
from ..domain.lineage import Lineage
from ..domain.payloads import Payloads
from ..domain.registry import Registry
from ..domain.updates import Patch
from . import converters as conv
from . import lineage_converters as lineage_conv
from . import policy_converters as policy_conv
from .callers import caller_of
from .fingerprints import request_fingerprint

Ctx = grpc.ServicerContext


def _mask(
    paths: list[str], msg: pb.Model | pb.ModelVersion, candidates: tuple[str, ...]
) -> tuple[str, ...]:
    return tuple(paths) if paths else conv.populated_paths(msg, candidates)


class ModelRegistryServicer(rpc_grpc.ModelRegistryServicer):
    """The ModelRegistry service."""

    def __init__(
        self,
        registry: Registry,
        payloads: Payloads,
        lineage: Lineage,
        clock: Callable[[], datetime],
    ) -> None:
        self._registry = registry
        self._payloads = payloads
        self._lineage = lineage
        self._clock = clock

    # -- models ------------------------------------------------------------------------------
    def CreateModel(self, request: rpc.CreateModelRequest, context: Ctx) -> pb.Model:
        model = self._registry.create_model(
            caller_of(context),
            request.model_id,
            conv.model_values(request.model),
            request.request_id,
            request_fingerprint(request),
        )
        return conv.model_to_proto(model)

    def GetModel(self, request: rpc.GetModelRequest, context: Ctx) -> pb.Model:
        model_id = names.parse_model_name(request.name)
        return conv.model_to_proto(self._registry.get_model(caller_of(context), model_id))

    def ListModels(self, request: rpc.ListModelsRequest, context: Ctx) -> rpc.ListModelsResponse:
        models, token = self._registry.list_models(
            caller_of(context),
            page_size=request.page_size,
            page_token=request.page_token,
            filter_text=request.filter,
            order_by=request.order_by,
            show_deleted=request.show_deleted,
        )
        return rpc.ListModelsResponse(
            models=[conv.model_to_proto(m) for m in models], next_page_token=token
        )

    def UpdateModel(self, request: rpc.UpdateModelRequest, context: Ctx) -> pb.Model:
        if not request.HasField("model"):
            raise InvalidArgument.field("model", "is required")
        model_id = names.parse_model_name(request.model.name, "model.name")
        patch = Patch(
            _mask(list(request.update_mask.paths), request.model, MODEL_FIELDS.updatable),
            conv.model_values(request.model),
        )
        model = self._registry.update_model(caller_of(context), model_id, request.model.etag, patch)
        return conv.model_to_proto(model)

    def DeleteModel(self, request: rpc.DeleteModelRequest, context: Ctx) -> pb.Model:
        model_id = names.parse_model_name(request.name)
        model = self._registry.delete_model(
            caller_of(context), model_id, request.etag, request.force
        )
        return conv.model_to_proto(model)

    def UndeleteModel(self, request: rpc.UndeleteModelRequest, context: Ctx) -> pb.Model:
        model_id = names.parse_model_name(request.name)
        model = self._registry.undelete_model(caller_of(context), model_id, request.etag)
        return conv.model_to_proto(model)

    # -- versions ----------------------------------------------------------------------------
    def CreateModelVersion(
        self, request: rpc.CreateModelVersionRequest, context: Ctx
    ) -> pb.ModelVersion:
        model_id = names.parse_model_name(request.parent, "parent")
        version = self._registry.create_version(
            caller_of(context),
            model_id,
            conv.version_values(request.model_version),
            request.request_id,
            request_fingerprint(request),
        )
        return conv.version_to_proto(version, self._clock())

    def GetModelVersion(self, request: rpc.GetModelVersionRequest, context: Ctx) -> pb.ModelVersion:
        ref = names.parse_version_name(request.name)
        at = conv.time_field(request, "read_time")
        version = self._registry.get_version(caller_of(context), ref, at)
        return conv.version_to_proto(version, self._clock())

    def ListModelVersions(
        self, request: rpc.ListModelVersionsRequest, context: Ctx
    ) -> rpc.ListModelVersionsResponse:
        model_id = names.parse_parent_for_versions(request.parent)
        versions, token = self._registry.list_versions(
            caller_of(context),
            model_id,
            page_size=request.page_size,
            page_token=request.page_token,
            filter_text=request.filter,
            order_by=request.order_by,
            show_deleted=request.show_deleted,
        )
        now = self._clock()
        return rpc.ListModelVersionsResponse(
            model_versions=[conv.version_to_proto(v, now) for v in versions],
            next_page_token=token,
        )

    def UpdateModelVersion(
        self, request: rpc.UpdateModelVersionRequest, context: Ctx
    ) -> pb.ModelVersion:
        if not request.HasField("model_version"):
            raise InvalidArgument.field("model_version", "is required")
        msg = request.model_version
        ref = names.parse_version_name(msg.name, "model_version.name", numbered=True)
        paths = _mask(list(request.update_mask.paths), msg, VERSION_FIELDS.updatable)
        patch = Patch(paths, conv.version_values(msg))
        version = self._registry.update_version(caller_of(context), ref, msg.etag, patch)
        return conv.version_to_proto(version, self._clock())

    def DeleteModelVersion(
        self, request: rpc.DeleteModelVersionRequest, context: Ctx
    ) -> pb.ModelVersion:
        ref = names.parse_version_name(request.name, numbered=True)
        version = self._registry.delete_version(
            caller_of(context), ref, request.etag, request.force
        )
        return conv.version_to_proto(version, self._clock())

    def UndeleteModelVersion(
        self, request: rpc.UndeleteModelVersionRequest, context: Ctx
    ) -> pb.ModelVersion:
        ref = names.parse_version_name(request.name, numbered=True)
        version = self._registry.undelete_version(caller_of(context), ref, request.etag)
        return conv.version_to_proto(version, self._clock())

    def SealModelVersion(
        self, request: rpc.SealModelVersionRequest, context: Ctx
    ) -> pb.ModelVersion:
        ref = names.parse_version_name(request.name, numbered=True)
        version = self._payloads.seal(
            caller_of(context), ref, request.etag, cancel_uploads=request.cancel_uploads
        )
        return conv.version_to_proto(version, self._clock())

    def TransitionModelVersionStage(
        self, request: rpc.TransitionModelVersionStageRequest, context: Ctx
    ) -> pb.ModelVersion:
        ref = names.parse_version_name(request.name)
        stage = conv.stage_from_proto(request.stage, "stage")
        version = self._registry.transition_stage(
            caller_of(context),
            ref,
            stage,
            request.comment,
            request.etag,
            archive_existing=request.archive_existing,
        )
        return conv.version_to_proto(version, self._clock())

    def ListStageTransitions(
        self, request: rpc.ListStageTransitionsRequest, context: Ctx
    ) -> rpc.ListStageTransitionsResponse:
        ref = names.parse_version_name(request.parent, "parent")
        items, token = self._registry.list_transitions(
            caller_of(context), ref, page_size=request.page_size, page_token=request.page_token
        )
        return rpc.ListStageTransitionsResponse(
            stage_transitions=[conv.transition_to_proto(t) for t in items],
            next_page_token=token,
        )

    # -- aliases -----------------------------------------------------------------------------
    def SetAlias(self, request: rpc.SetAliasRequest, context: Ctx) -> pb.Alias:
        model_id, alias = names.parse_alias_name(request.alias.name, "alias.name")
        if not request.alias.version:
            raise InvalidArgument.field("alias.version", "is required")
        target = names.parse_version_name(request.alias.version, "alias.version")
        record = self._registry.set_alias(caller_of(context), model_id, alias, target)
        return conv.alias_to_proto(record)

    def GetAlias(self, request: rpc.GetAliasRequest, context: Ctx) -> pb.Alias:
        model_id, alias = names.parse_alias_name(request.name)
        at = conv.time_field(request, "read_time")
        return conv.alias_to_proto(
            self._registry.get_alias(caller_of(context), model_id, alias, at)
        )

    def ListAliases(self, request: rpc.ListAliasesRequest, context: Ctx) -> rpc.ListAliasesResponse:
        model_id = names.parse_model_name(request.parent, "parent")
        aliases = self._registry.list_aliases(caller_of(context), model_id)
        return rpc.ListAliasesResponse(aliases=[conv.alias_to_proto(a) for a in aliases])

    def DeleteAlias(self, request: rpc.DeleteAliasRequest, context: Ctx) -> empty_pb2.Empty:
        model_id, alias = names.parse_alias_name(request.name)
        self._registry.delete_alias(caller_of(context), model_id, alias)
        return empty_pb2.Empty()

    def ListAliasHistory(
        self, request: rpc.ListAliasHistoryRequest, context: Ctx
    ) -> rpc.ListAliasHistoryResponse:
        alias: str | None = None
        if "/aliases/" in request.parent:
            model_id, alias = names.parse_alias_name(request.parent, "parent")
        else:
            model_id = names.parse_model_name(request.parent, "parent")
        moves, token = self._registry.list_alias_history(
            caller_of(context),
            model_id,
            alias,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return rpc.ListAliasHistoryResponse(
            alias_moves=[_alias_move(m) for m in moves], next_page_token=token
        )

    # -- lineage -----------------------------------------------------------------------------
    def GetLineage(self, request: rpc.GetLineageRequest, context: Ctx) -> rpc.GetLineageResponse:
        graph = self._lineage.get_lineage(
            caller_of(context),
            name=request.name,
            dataset_uri=request.dataset_uri,
            direction=lineage_conv.direction_from_proto(request.direction, "direction"),
            max_depth=request.max_depth,
            show_deleted=request.show_deleted,
        )
        return lineage_conv.graph_to_proto(graph, self._clock())

    # -- policies ----------------------------------------------------------------------------
    def GetModelPolicy(self, request: rpc.GetModelPolicyRequest, context: Ctx) -> pb.ModelPolicy:
        model_id = names.parse_model_name(request.resource, "resource")
        stored = self._registry.get_model_policy(caller_of(context), model_id)
        return policy_conv.policy_to_proto(model_id, stored)

    def SetModelPolicy(self, request: rpc.SetModelPolicyRequest, context: Ctx) -> pb.ModelPolicy:
        model_id = names.parse_model_name(request.resource, "resource")
        if not request.HasField("policy"):
            raise InvalidArgument.field("policy", "is required")
        policy = policy_conv.policy_from_proto(request.policy)
        stored = self._registry.set_model_policy(
            caller_of(context), model_id, policy, request.policy.etag
        )
        return policy_conv.policy_to_proto(model_id, stored)


def _alias_move(move: AliasMove) -> rpc.AliasMove:
    number = move.version_number
    when = timestamp_pb2.Timestamp()
    when.FromDatetime(move.time)
    return rpc.AliasMove(
        alias=names.alias_name(move.model_id, move.alias),
        version="" if number is None else names.version_name(move.model_id, number),
        move_time=when,
        principal=move.principal,
        method=move.method,
    )
