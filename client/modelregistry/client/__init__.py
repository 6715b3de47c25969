"""Python client of the model registry.

Example::

    from modelregistry.client import RegistryClient

    with RegistryClient("127.0.0.1:50051") as registry:
        registry.create_model("fraud", display_name="Fraud detector")
        version = registry.create_version("fraud", metrics={"auc": 0.91})
        registry.upload_file("fraud", version.version_number, "model.onnx")
        registry.seal_version("fraud", version.version_number)
        registry.download_file("fraud", "latest", "/tmp/model.onnx")
"""

from modelregistry.client.cache import (
    CACHE_DIR_ENV,
    Cache,
    CachedVersion,
    CorruptEntry,
    ManifestFile,
    PruneReport,
    VerifyReport,
)
from modelregistry.client.client import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    MAX_MESSAGE_SIZE,
    BinaryReader,
    BinaryWriter,
    ProgressCallback,
    RegistryClient,
    channel_options,
    service_config,
)
from modelregistry.client.errors import (
    CLIENT_DOMAIN,
    DOMAIN,
    AbortedError,
    AlreadyExistsError,
    CancelledError,
    DataLossError,
    DeadlineExceededError,
    FailedPreconditionError,
    IntegrityError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    RegistryError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    error_class,
    from_rpc_error,
)
from modelregistry.client.locks import CacheBusyError
from modelregistry.client.names import (
    DEFAULT_FILE_ID,
    LATEST,
    AliasName,
    FileName,
    ModelName,
    VersionName,
    alias_name,
    file_name,
    model_name,
    parse_alias_name,
    parse_file_name,
    parse_model_name,
    parse_version_name,
    version_name,
)
from modelregistry.client.pager import Pager
from modelregistry.client.pulls import PulledFile, PulledVersion, parse_pull_ref
from modelregistry.client.pushes import PushResult
from modelregistry.client.watch import EventWatch

__all__ = [
    "CACHE_DIR_ENV",
    "CLIENT_DOMAIN",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_FILE_ID",
    "DOMAIN",
    "LATEST",
    "MAX_CHUNK_SIZE",
    "MAX_MESSAGE_SIZE",
    "AbortedError",
    "AliasName",
    "AlreadyExistsError",
    "BinaryReader",
    "BinaryWriter",
    "Cache",
    "CacheBusyError",
    "CachedVersion",
    "CancelledError",
    "CorruptEntry",
    "DataLossError",
    "DeadlineExceededError",
    "EventWatch",
    "FailedPreconditionError",
    "FileName",
    "IntegrityError",
    "InternalError",
    "InvalidArgumentError",
    "ManifestFile",
    "ModelName",
    "NotFoundError",
    "OutOfRangeError",
    "Pager",
    "PermissionDeniedError",
    "ProgressCallback",
    "PruneReport",
    "PulledFile",
    "PulledVersion",
    "PushResult",
    "RegistryClient",
    "RegistryError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "VerifyReport",
    "VersionName",
    "alias_name",
    "channel_options",
    "error_class",
    "file_name",
    "from_rpc_error",
    "model_name",
    "parse_alias_name",
    "parse_file_name",
    "parse_model_name",
    "parse_pull_ref",
    "parse_version_name",
    "service_config",
    "version_name",
]
