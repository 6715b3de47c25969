"""The serving edge: one ``grpc.aio`` interceptor that runs the synchronous servicers.

The server is asynchronous, the servicers and everything below them are synchronous. For
every handler of our services the interceptor

- runs the servicer in a bounded executor (unary calls and streams have separate pools), so
  blocking work (peewee, file I/O, hashing) never blocks the event loop, and waiting for a
  slow client holds no thread: an upload's next message and a download's flow-control window
  are awaited on the loop;
- counts open streams and refuses one beyond ``max_streams`` (in total, of downloads, and
  with authentication on of one caller) with RESOURCE_EXHAUSTED ``TOO_MANY_STREAMS``;
- ends a stream that makes no progress (no message received, or none accepted by the client)
  for ``stream_idle_timeout`` seconds with DEADLINE_EXCEEDED ``STREAM_IDLE_TIMEOUT``;
- authenticates the call and checks the scope its method needs (``api/permissions.py``)
  before anything else happens, and hands the :class:`Caller` to the servicer
  (``context.caller``) with the call's request id (``x-request-id``, or a fresh uuid4);
- records refused calls and failed mutating calls as access events
  (``api/access_events.py``), on a worker thread;
- sets the call's deadline for the thread (:mod:`..domain.deadlines`);
- lets a server stream hand out ``bytes`` that are already its serialised messages (the
  response serializer passes them through), so a download frames its data once;
- decodes requests itself: gRPC answers bytes that do not parse as the request message with
  INTERNAL "Exception deserializing request!", so handlers are re-registered with no request
  deserializer and each message (every one of a request stream too) is parsed inside the
  mapping, where a failure is INVALID_ARGUMENT ``MALFORMED_REQUEST``;
- maps every failure to a status: domain errors to their mapped status with details,
  anything else is logged with its traceback and becomes INTERNAL "internal error", including
  errors raised mid-stream (never UNKNOWN);
- returns the call's request id in the trailing metadata (``x-request-id``), and tells the
  observer (``api/observation.py``: metrics, the access log) about every call: its arrival,
  its messages and bytes as they pass, its streams' slots, its status code and duration.

Health and reflection are asynchronous servicers and bypass all of this: they answer on the
event loop and are never queued behind user work. Services in ``admitted_passthrough``
(reflection with ``--reflection authenticated``) are admitted first, the verification on the
unary pool like any other call's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Executor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from ..domain import deadlines
from ..domain.errors import (
    Cancelled,
    DeadlineExceeded,
    DomainError,
    InvalidArgument,
    PermissionDenied,
    Reason,
    ResourceExhausted,
)
from ..domain.identity import Caller
from .access_events import REQUEST_ID_HEADER, request_id_of, worth_recording
from .authentication import ANONYMOUS, Authentication, Credentials
from .errors import internal_status, to_status
from .heap import HeapTrimmer
from .observation import CallObserver, CallRecord, MethodInfo
from .permissions import Requirement, requirement
from .workers import Workers

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
    _Interceptor = grpc.aio.ServerInterceptor

Scope = Callable[[], AbstractContextManager[None]]
Decoder = Callable[[bytes], Any]
# Records a refused or failed call: (caller, method, request message, error).
AccessLog = Callable[[Caller, str, Any, BaseException], None]
AioContext = grpc.aio.ServicerContext[Any, Any]
_END = object()
_KINDS: dict[str, Callable[..., Any]] = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}
# A download whose client has accepted no message for this long releases its blocks. Not
# shorter: a reader that is merely slow pays for each pause with a block read again.
_PARK_AFTER_S = 1.0
_EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # exported, missing from the stubs


@dataclass(frozen=True)
class ServingLimits:
    """What one server allows (see the README's *Limits*)."""

    max_streams: int = 1000
    stream_idle_timeout: float = 60.0
    max_download_streams: int = 1000
    # Streams of one caller (tenant and actor) at a time, with authentication on.
    max_streams_per_principal: int = 64


class _Aborted(Exception):
    """A synchronous servicer called ``context.abort``; the status is sent by the loop."""

    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details)
        self.status = status


class _PlainStatus(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing: Any = ()) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing


class SyncContext:
    """What a synchronous servicer sees of its call, from the thread it runs on."""

    def __init__(self, context: AioContext) -> None:
        self._context = context
        self.caller: Caller = ANONYMOUS  # set once the call is admitted
        self._ended = False  # written under the lock
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def invocation_metadata(self) -> Any:
        return self._context.invocation_metadata()

    def time_remaining(self) -> float | None:
        remaining: float | None = self._context.time_remaining()
        return remaining

    def peer(self) -> str:
        return str(self._context.peer())

    def is_active(self) -> bool:
        return not self._ended

    def add_callback(self, callback: Callable[[], None]) -> bool:
        with self._lock:
            if self._ended:
                return False
            self._callbacks.append(callback)
            return True

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise _Aborted(_PlainStatus(code, details))

    def abort_with_status(self, status: grpc.Status) -> None:
        raise _Aborted(status)

    def end(self) -> None:
        """The call is over (finished or cancelled): run the termination callbacks."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()


def _decoded(decode: Decoder | None, data: Any) -> Any:
    if decode is None or not isinstance(data, bytes):
        return data
    try:
        return decode(data)
    except DecodeError as exc:
        raise InvalidArgument(
            "the request does not decode as the method's request message",
            reason=Reason.MALFORMED_REQUEST,
        ) from exc


async def _fail(context: AioContext, call: CallRecord, exc: BaseException) -> None:
    if isinstance(exc, _Aborted):
        status = exc.status
    elif isinstance(exc, DomainError):
        status = to_status(exc)
    else:
        log.error("unexpected error in %s", call.method.full, exc_info=exc)
        status = internal_status()
    call.code = status.code
    trailing = tuple(status.trailing_metadata or ())
    if call.request_id:
        trailing = (*trailing, (REQUEST_ID_HEADER, call.request_id))
    await context.abort(status.code, status.details, trailing)


def _succeeded(context: AioContext, call: CallRecord) -> None:
    context.set_trailing_metadata(((REQUEST_ID_HEADER, call.request_id),))


def _too_many(what: str, limit: int) -> ResourceExhausted:
    return ResourceExhausted(
        f"the server is serving its limit of {limit} {what}; retry later",
        reason=Reason.TOO_MANY_STREAMS,
        metadata={"limit": str(limit), "kind": what},
    )


def _too_many_of_caller(limit: int) -> ResourceExhausted:
    return ResourceExhausted(
        f"you have {limit} streams open, the limit per caller; retry when one has ended",
        reason=Reason.TOO_MANY_STREAMS,
        metadata={"limit": str(limit), "kind": "streams per principal"},
    )


def _idle_error(what: str, seconds: float) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"the stream made no progress ({what}) for {seconds:g} s; resume it",
        reason=Reason.STREAM_IDLE_TIMEOUT,
    )


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a late failure of an abandoned read or write is expected


class _Requests:
    """A synchronous iterator over a client stream, for a servicer running on a thread:
    each message is read on the event loop, waiting at most the idle timeout."""

    def __init__(
        self,
        context: AioContext,
        sync: SyncContext,
        loop: asyncio.AbstractEventLoop,
        idle: float,
        decode: Decoder | None,
        call: CallRecord,
    ) -> None:
        self._context = context
        self._call = call
        self._decode = decode
        self._sync = sync
        self._loop = loop
        self._idle = idle
        self._first: collections.deque[Any] = collections.deque()  # read ahead, may end in _END
        self.header: Any = None  # the first message, decoded (access events name its target)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._first:
            message = self._first[0]
            if message is _END:
                raise StopIteration
            self._first.popleft()
            return self._decoded(message)
        message = asyncio.run_coroutine_threadsafe(self.read(), self._loop).result()
        if message is _END:
            raise StopIteration
        return self._decoded(message)

    def _decoded(self, message: Any) -> Any:
        decoded = _decoded(self._decode, message)
        if self.header is None:
            self.header = decoded
        return decoded

    async def read(self) -> Any:
        """The next message or ``_END``; on the event loop."""
        if not self._sync.is_active():
            raise Cancelled("the client cancelled the call or the connection dropped")
        task = asyncio.ensure_future(self._context.read())
        done, _ = await asyncio.wait({task}, timeout=self._idle)
        if not done:
            task.add_done_callback(_retrieve)
            raise _idle_error("no message received", self._idle)
        try:
            message = task.result()
        except Exception:
            raise Cancelled("the client cancelled the call or the connection dropped") from None
        if message is _EOF:
            return _END
        self._call.received(message)
        return message

    async def prefetch(self, count: int) -> None:
        """Wait on the loop, holding no thread, until the stream has its first ``count``
        messages (or ended)."""
        while len(self._first) < count:
            message = await self.read()
            self._first.append(message)
            if message is _END:
                return


class ErrorMappingInterceptor(_Interceptor):
    """Runs the synchronous servicers of our services (see the module docstring).

    ``unary_scope`` wraps each unary call on its thread (e.g. one database connection per
    request); streaming calls, which may last minutes, take resources only while they need
    them. Methods in ``passthrough`` (health, reflection) are served as they are.
    """

    def __init__(
        self,
        *,
        unary_pool: Executor,
        stream_pool: Executor,
        limits: ServingLimits,
        passthrough: frozenset[str] = frozenset(),
        admitted_passthrough: frozenset[str] = frozenset(),
        unary_scope: Scope = nullcontext,
        authentication: Authentication | None = None,
        observer: CallObserver | None = None,
        heap: HeapTrimmer | None = None,
    ) -> None:
        self._authentication = authentication or Authentication()
        self._heap = heap if heap is not None else HeapTrimmer(stream_pool)
        self._observer = observer
        self._unary_pool = unary_pool
        self._stream_pool = stream_pool
        self._limits = limits
        self._passthrough = passthrough
        self._admitted_passthrough = admitted_passthrough
        self._unary_scope = unary_scope
        self._streams = 0
        self._downloads = 0
        self._per_principal: dict[tuple[str, str], int] = {}
        self._access_log: AccessLog | None = None
        # method -> (the handler found, what it is served as): built once per handler.
        self._served: dict[str, tuple[Handler, Handler]] = {}

    @property
    def open_streams(self) -> int:
        """Streams being served right now."""
        return self._streams

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        served = self._served.get(method)
        if served is not None and served[0] is handler:
            return served[1]
        wrapped = self._serve(method, handler)
        self._served[method] = (handler, wrapped)
        return wrapped

    def _serve(self, method: str, handler: Handler) -> Handler:
        """What ``handler`` of ``method`` is served as (see the class docstring)."""
        service = method.split("/")[1]
        if service in self._passthrough:
            if service in self._admitted_passthrough:
                return self._admitted(method, handler)
            return handler
        decode = handler.request_deserializer
        out = handler.response_serializer
        # Every handler is re-registered with no request deserializer: bytes reach the wrapper.
        if handler.unary_unary:
            info = MethodInfo.of(method, "unary")
            return grpc.unary_unary_rpc_method_handler(
                self._unary(info, handler.unary_unary, decode, self._unary_scope), None, out
            )
        if handler.unary_stream:
            info = MethodInfo.of(method, "server_stream")
            return grpc.unary_stream_rpc_method_handler(
                self._server_stream(info, handler.unary_stream, decode),
                None,
                _preserialised(out),
            )
        if handler.stream_unary:
            info = MethodInfo.of(method, "client_stream")
            return grpc.stream_unary_rpc_method_handler(
                self._client_stream(info, handler.stream_unary, decode), None, out
            )
        # No bidirectional streams in our services; one added later is refused, never served
        # without admission.
        return grpc.stream_stream_rpc_method_handler(_not_admitted(method), None, out)

    @property
    def authentication(self) -> Authentication:
        """The authentication calls are admitted with (the web adapter admits with it too)."""
        return self._authentication

    def use_authentication(self, authentication: Authentication) -> None:
        """Authenticate calls with ``authentication`` from now on (installed with the
        backends: API keys live in the database)."""
        self._authentication = authentication

    def _begin(self, info: MethodInfo, context: AioContext) -> CallRecord:
        call = CallRecord(info, context)
        if self._observer is not None:
            self._observer.started(info)
        return call

    def _end(self, call: CallRecord, sync: SyncContext) -> None:
        if sync.caller is not ANONYMOUS:  # admitted (admission replaces the caller)
            call.caller = sync.caller
        if self._observer is not None:
            self._observer.finished(call, time.perf_counter() - call.started)

    def use_access_log(self, record: AccessLog) -> None:
        """Record refused and failed calls with ``record`` from now on (installed with the
        backends: events live in the database)."""
        self._access_log = record

    # -- admission -----------------------------------------------------------------------------
    def _admission(self, method: str, context: AioContext) -> _Admission:
        """What the call presents, read on the loop; verified later on a thread."""
        metadata = context.invocation_metadata()
        return _Admission(
            self._authentication,
            Credentials.of(metadata, context.auth_context()),
            requirement(method),
            method,
            request_id_of(metadata),
            self._access_log,
        )

    async def _admit(self, admission: _Admission, sync: SyncContext) -> None:
        """Admit a stream before it takes a slot (verification may read the database)."""
        if admission.authentication.enabled:
            await _on(self._unary_pool, admission, sync)
        else:
            admission(sync)

    def _admitted(self, method: str, handler: Handler) -> Handler:
        """A passthrough handler (asynchronous, served on the loop) that admits the call
        first; the verification runs on the unary pool (it may read the database)."""

        info = MethodInfo.of(method, "passthrough")

        async def admit(context: AioContext) -> None:
            sync = SyncContext(context)
            try:
                await self._admit(self._admission(method, context), sync)
            except Exception as exc:
                await _fail(context, CallRecord(info, context), exc)
            finally:
                sync.end()

        kind = next(k for k in _KINDS if getattr(handler, k) is not None)
        behavior: Callable[[Any, AioContext], Any] = getattr(handler, kind)

        async def responses(request: Any, context: AioContext) -> Any:
            await admit(context)
            result = behavior(request, context)
            if hasattr(result, "__aiter__"):
                async for message in result:
                    yield message
            else:
                await result

        async def response(request: Any, context: AioContext) -> Any:
            await admit(context)
            return await behavior(request, context)

        wrapped = responses if kind.endswith("_stream") else response
        make: Callable[..., Handler] = _KINDS[kind]
        return make(wrapped, handler.request_deserializer, handler.response_serializer)

    # -- unary -------------------------------------------------------------------------------
    def _unary(
        self, info: MethodInfo, behavior: Callable[..., Any], decode: Decoder | None, scope: Scope
    ) -> Any:
        method = info.full

        async def unary(request: Any, context: AioContext) -> Any:
            call = self._begin(info, context)
            call.received(request)
            sync = SyncContext(context)
            remaining = context.time_remaining()
            try:
                admission = self._admission(method, context)
                call.request_id = admission.request_id
                run = functools.partial(
                    _run, behavior, scope, remaining, decode, admission, self._access_log, method
                )
                response = await _on(self._unary_pool, run, request, sync)
                call.sent(response)
                _succeeded(context, call)
                return response
            except asyncio.CancelledError:
                call.code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                await _fail(context, call, exc)
            finally:
                sync.end()
                self._end(call, sync)

        return unary

    # -- streams -----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _stream_slot(
        self, caller: Caller, info: MethodInfo, download: bool = False
    ) -> AsyncIterator[None]:
        """Hold a stream slot: refused beyond the server's limits, and with authentication on
        beyond the caller's own (counted per tenant and actor)."""
        limits = self._limits
        if self._streams >= limits.max_streams:
            raise _too_many("streams", limits.max_streams)
        if download and self._downloads >= limits.max_download_streams:
            raise _too_many("download streams", limits.max_download_streams)
        principal = (caller.tenant, caller.actor) if self._authentication.enabled else None
        if principal is not None:
            held = self._per_principal.get(principal, 0)
            if held >= limits.max_streams_per_principal:
                raise _too_many_of_caller(limits.max_streams_per_principal)
            self._per_principal[principal] = held + 1
        self._streams += 1
        self._downloads += download
        observer = self._observer
        if observer is not None:
            observer.stream_opened(info)
        try:
            yield
        finally:
            self._streams -= 1
            self._downloads -= download
            if observer is not None:
                observer.stream_closed(info)
            if principal is not None:
                left = self._per_principal.pop(principal) - 1
                if left:
                    self._per_principal[principal] = left

    def _client_stream(
        self, info: MethodInfo, behavior: Callable[..., Any], decode: Decoder | None
    ) -> Any:
        idle = self._limits.stream_idle_timeout
        method = info.full

        async def client_stream(request_iterator: Any, context: AioContext) -> Any:
            call = self._begin(info, context)
            loop = asyncio.get_running_loop()
            sync = SyncContext(context)
            requests = _Requests(context, sync, loop, idle, decode, call)
            work: asyncio.Future[Any] | None = None
            try:
                admission = self._admission(method, context)
                call.request_id = admission.request_id
                await self._admit(admission, sync)
                async with self._stream_slot(sync.caller, info):
                    # An upload's header and first chunk: a stream that sent only its
                    # header holds no thread.
                    await requests.prefetch(2)
                    remaining = context.time_remaining()
                    run = functools.partial(
                        _run, behavior, nullcontext, remaining, None, None, self._access_log, method
                    )
                    work = loop.run_in_executor(self._stream_pool, run, requests, sync)
                    response = await asyncio.shield(work)
                call.sent(response)
                _succeeded(context, call)
                return response
            except asyncio.CancelledError:
                call.code = grpc.StatusCode.CANCELLED
                sync.end()  # the servicer sees the cancellation; wait until it has stopped
                if work is not None:
                    with contextlib.suppress(BaseException):
                        await work
                raise
            except Exception as exc:
                await _fail(context, call, exc)
            finally:
                sync.end()
                self._end(call, sync)

        return client_stream

    def _server_stream(
        self, info: MethodInfo, behavior: Callable[..., Any], decode: Decoder | None
    ) -> Any:
        method = info.full

        # An asynchronous generator that yields nothing (it writes each message itself, with
        # the idle timeout): a generator is what an outer interceptor of responses, such as
        # OpenTelemetry's, iterates over.
        async def server_stream(request: Any, context: AioContext) -> AsyncIterator[None]:
            call = self._begin(info, context)
            call.received(request)
            sync = SyncContext(context)
            remaining = context.time_remaining()
            at = None if remaining is None else time.monotonic() + remaining
            producer: _Producer | None = None
            decoded: Any = None
            admitted = False
            try:
                admission = self._admission(method, context)
                call.request_id = admission.request_id
                await self._admit(admission, sync)
                admitted = True
                async with self._stream_slot(
                    sync.caller, info, download=method.endswith("/DownloadFile")
                ):
                    decoded = _decoded(decode, request)
                    messages = behavior(decoded, sync)
                    producer = _Producer(messages, self._stream_pool, self._heap)
                    while (message := await producer.next(at)) is not _END:
                        await self._write(context, message, producer)
                        call.sent(message)
                _succeeded(context, call)
            except asyncio.CancelledError:
                call.code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                record = self._access_log
                if admitted and record is not None and worth_recording(method, exc):
                    await asyncio.get_running_loop().run_in_executor(
                        self._unary_pool, record, sync.caller, method, decoded, exc
                    )
                await _fail(context, call, exc)
            finally:
                sync.end()
                if producer is not None:
                    await producer.close()
                self._end(call, sync)
            return
            yield  # pragma: no cover  (makes this an asynchronous generator)

        return server_stream

    async def _write(self, context: AioContext, message: Any, producer: _Producer) -> None:
        """Send ``message``, waiting at most the idle timeout for the client to accept it.
        Once the client has been slow for ``_PARK_AFTER_S`` the producer is parked: it lets
        go of what it holds until the next message is asked for."""
        idle = self._limits.stream_idle_timeout
        write = asyncio.ensure_future(context.write(message))
        try:
            first = _PARK_AFTER_S if producer.parks and idle > _PARK_AFTER_S else idle
            done, _ = await asyncio.wait({write}, timeout=first)
            if not done and first < idle:
                await producer.park()
                done, _ = await asyncio.wait({write}, timeout=idle - first)
            if not done:
                raise _idle_error("no message accepted by the client", idle)
        except BaseException:  # idle, or the call was cancelled: the write fails later
            write.add_done_callback(_retrieve)
            raise
        try:
            write.result()
        except Exception:  # the call ended under the write
            raise Cancelled("the client cancelled the call or the connection dropped") from None


class _Producer:
    """A servicer's response iterator, driven from the loop: each step runs in the stream
    pool, one at a time (a step still running when the call is cancelled is waited for
    before the iterator is closed).

    Optional methods of the iterator: ``ready()`` true means the next message is made from
    bytes already in memory, so it is made on the loop without a thread hop; ``park()``
    releases what it holds while its client reads nothing and says whether it held anything
    (then ``heap`` trims).
    """

    def __init__(self, messages: Iterator[Any], pool: Executor, heap: HeapTrimmer) -> None:
        self._messages = messages
        self._pool = pool
        self._heap = heap
        self._step: asyncio.Future[Any] | None = None
        self._ready: Callable[[], bool] | None = getattr(messages, "ready", None)
        self.parks = callable(getattr(messages, "park", None))

    def _run(self, step: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        self._step = asyncio.get_running_loop().run_in_executor(self._pool, step, *args)
        return self._step

    async def next(self, deadline_at: float | None) -> Any:
        """The next message, or ``_END``."""
        if self._ready is not None and self._ready():
            return _next_message(self._messages, deadline_at)
        return await self._run(_next_message, self._messages, deadline_at)

    async def park(self) -> None:
        if await self._run(self._messages.park):  # type: ignore[attr-defined]  # see .parks
            self._heap.soon()

    async def close(self) -> None:
        if self._step is not None and not self._step.done():
            await asyncio.wait({self._step})
        close = getattr(self._messages, "close", None)
        if close is not None:
            await self._run(close)


def _preserialised(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """A response serializer that passes ``bytes`` through: a stream servicer may hand out
    messages it serialised itself (DownloadFile's frames)."""
    if serialize is None:
        return None

    def out(message: Any) -> bytes:
        return message if type(message) is bytes else serialize(message)

    return out


def _on(pool: Executor, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    """``fn(*args)`` on ``pool``, awaited on the loop (:class:`Workers` hop cheaper)."""
    if isinstance(pool, Workers):
        return pool.call(fn, *args)
    return asyncio.get_running_loop().run_in_executor(pool, fn, *args)


def _not_admitted(method: str) -> Callable[[Any, AioContext], AsyncIterator[Any]]:
    async def refuse(_requests: Any, context: AioContext) -> AsyncIterator[Any]:
        log.error("%s is a bidirectional stream, which the serving edge cannot admit", method)
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this method is not served")
        yield  # pragma: no cover  (makes this a stream handler)

    return refuse


@dataclass(frozen=True)
class _Admission:
    authentication: Authentication
    credentials: Credentials
    need: Requirement
    method: str
    request_id: str
    access_log: AccessLog | None

    def __call__(self, sync: SyncContext, subject: Callable[[], Any] = lambda: None) -> None:
        """Verify the credentials and the scope; the caller goes to ``sync.caller``. A
        denial of an authenticated caller is recorded, naming what ``subject()`` (the
        request, if it decodes) targets; an unauthenticated call is not: it proves no
        tenant, and a flood of them must not become writes."""
        try:
            caller = self.authentication.admit(self.credentials, self.need)
        except PermissionDenied as exc:
            self._record_denial(exc, subject)
            raise
        sync.caller = replace(caller, request_id=self.request_id)

    def _record_denial(self, exc: PermissionDenied, subject: Callable[[], Any]) -> None:
        if self.access_log is None:
            return
        try:
            who = self.authentication.authenticate(self.credentials)
            request = subject()
        except DomainError:
            return
        self.access_log(replace(who, request_id=self.request_id), self.method, request, exc)


def _run(
    behavior: Callable[[Any, Any], Any],
    scope: Scope,
    remaining: float | None,
    decode: Decoder | None,
    admission: _Admission | None,
    access_log: AccessLog | None,
    method: str,
    request: Any,
    sync: SyncContext,
) -> Any:
    if admission is not None:
        # Before the request is decoded; a denial decodes it to name its target.
        admission(sync, lambda: _decoded(decode, request))
    decoded: Any = None
    try:
        with deadlines.call_deadline(remaining), scope():
            decoded = _decoded(decode, request)
            return behavior(decoded, sync)
    except Exception as exc:
        if access_log is not None:
            access_log(sync.caller, method, _subject(decoded, request), exc)
        raise


def _subject(decoded: Any, request: Any) -> Any:
    """The request message an access event names the target of."""
    return request.header if isinstance(request, _Requests) else decoded


def _next_message(messages: Iterator[Any], deadline_at: float | None) -> Any:
    # The generator's own deadline checks see the time left when this message is pulled.
    left = None if deadline_at is None else deadline_at - time.monotonic()
    with deadlines.call_deadline(left):
        return next(messages, _END)
