"""The one table of what every RPC needs: a scope, a credential that verifies (GetCaller), or
nothing (health; reflection by choice), and which RPCs change something (:data:`MUTATING`:
each records exactly one event).

``tests/unit/test_permissions.py`` builds the list of RPCs from the service descriptors and
fails if one is missing here, so no RPC can ship unguarded. What needs the resource (model
policies, protected aliases, upload ownership) is decided in the domain, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from ..domain.identity import Permission


class Open(StrEnum):
    """RPCs that need no scope."""

    HEALTH = "health"  # never needs credentials (probes)
    AUTHENTICATED = "authenticated"  # any credential that verifies (who am I)
    REFLECTION = "reflection"  # open unless the server is told otherwise (grpcurl)


Requirement = Permission | Open

_R = Permission.READ
_C = Permission.CREATE
_U = Permission.UPDATE
_D = Permission.DELETE
_A = Permission.ADMIN

_BY_SERVICE: dict[str, dict[str, Requirement]] = {
    "modelregistry.v1.ModelRegistry": {
        "CreateModel": _C,
        "GetModel": _R,
        "ListModels": _R,
        "UpdateModel": _U,
        "DeleteModel": _D,
        "UndeleteModel": _D,
        "CreateModelVersion": _C,
        "GetModelVersion": _R,
        "ListModelVersions": _R,
        "UpdateModelVersion": _U,
        "DeleteModelVersion": _D,
        "UndeleteModelVersion": _D,
        "SealModelVersion": _U,
        "TransitionModelVersionStage": _U,
        "ListStageTransitions": _R,
        "SetAlias": _U,
        "GetAlias": _R,
        "ListAliases": _R,
        "DeleteAlias": _U,
        "ListAliasHistory": _R,
        "GetLineage": _R,
        # The scope is only the first step: who may set a policy is the model's (domain/access).
        "GetModelPolicy": _R,
        "SetModelPolicy": _U,
    },
    "modelregistry.v1.PayloadService": {
        "UploadFile": _C,
        "DownloadFile": _R,
        "GetFile": _R,
        "ListFiles": _R,
        # Upload sessions belong to whoever opened them: only uploaders have any.
        "GetUploadStatus": _C,
        "CancelUpload": _C,
        "ListUploads": _C,
        "VerifyFile": _R,
    },
    "modelregistry.v1.AccessService": {
        "CreateApiKey": Permission.ADMIN,
        "ListApiKeys": Permission.ADMIN,
        "RevokeApiKey": Permission.ADMIN,
        "GetCaller": Open.AUTHENTICATED,
    },
    "modelregistry.v1.EventService": {
        "ListEvents": _R,  # registry.admin sees the tenant's log, others its models' changes
        "VerifyEvents": _A,
        "WatchEvents": _R,  # sees what ListEvents would
    },
    "modelregistry.v1.WebhookService": {
        "CreateWebhook": _A,
        "GetWebhook": _A,
        "ListWebhooks": _A,
        "UpdateWebhook": _A,
        "DeleteWebhook": _A,
        "RotateWebhookSecret": _A,
        "ListWebhookDeliveries": _A,
        "ResendWebhookDelivery": _A,
    },
    "grpc.health.v1.Health": {"Check": Open.HEALTH, "List": Open.HEALTH, "Watch": Open.HEALTH},
    "grpc.reflection.v1.ServerReflection": {"ServerReflectionInfo": Open.REFLECTION},
    "grpc.reflection.v1alpha.ServerReflection": {"ServerReflectionInfo": Open.REFLECTION},
}

METHOD_REQUIREMENTS: Mapping[str, Requirement] = {
    f"/{service}/{method}": need
    for service, methods in _BY_SERVICE.items()
    for method, need in methods.items()
}


# RPCs that need a writing scope but change nothing. Every other RPC whose scope is
# create/update/delete/admin is a mutation: it appends exactly one event in the transaction of
# its change (tests/api/test_events_api.py calls every RPC and checks), and a failed call of
# it is recorded as an access event.
WRITE_SCOPED_READS = frozenset(
    {
        "/modelregistry.v1.PayloadService/GetUploadStatus",
        "/modelregistry.v1.PayloadService/ListUploads",
        "/modelregistry.v1.EventService/VerifyEvents",
        "/modelregistry.v1.AccessService/ListApiKeys",
        "/modelregistry.v1.WebhookService/GetWebhook",
        "/modelregistry.v1.WebhookService/ListWebhooks",
        "/modelregistry.v1.WebhookService/ListWebhookDeliveries",
    }
)
_WRITE_SCOPES = (_C, _U, _D, _A)
MUTATING = frozenset(
    method
    for method, need in METHOD_REQUIREMENTS.items()
    if need in _WRITE_SCOPES and method not in WRITE_SCOPED_READS
)


def is_mutating(method: str) -> bool:
    """Whether the RPC ``/package.Service/Method`` changes something (see :data:`MUTATING`)."""
    return method in MUTATING


def requirement(method: str) -> Requirement:
    """What the RPC ``/package.Service/Method`` needs; a method missing from the table
    (impossible for a served method, the test sees to it) needs ``registry.admin``."""
    return METHOD_REQUIREMENTS.get(method, Permission.ADMIN)
