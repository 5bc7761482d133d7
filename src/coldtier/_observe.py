"""Observability (DESIGN.md §12): metrics through the OpenTelemetry API and structured log records.

Everything coldtier measures is measured here; the engine calls in at the
public method boundary (:func:`operation` and, for iterators,
:func:`streamed`: one decorator per method of ``StoreArchive``), where a put
is answered and its object stored (:func:`answered`, :func:`stored`, in
``put.py``), where a call's receipt is built (:func:`new_objects`, in
``write.py``), where a store's failure is translated (:func:`failed_request`,
in ``faults.py``), and where a backend sees its client retry or a create
refused (:func:`retried`, :func:`refused`, public in :mod:`coldtier.observe`).
Observing a call never fails it.

Metrics go to the meter provider given to :func:`configure`, else to
OpenTelemetry's global one, looked up at the first call (the API's proxy
meter forwards to a provider set later).  Without ``opentelemetry-api``
installed every metric is skipped by one ``is None`` test.

* ``coldtier.calls`` (counter) and ``coldtier.call.duration`` (histogram,
  seconds): public calls by ``operation``, ``backend`` and ``outcome``;
* ``coldtier.events`` (events archived, read, verified) and ``coldtier.bytes``
  (bytes archived), by ``operation`` and ``backend``;
* ``coldtier.objects``: objects stored, by ``backend`` and ``state``
  (``created``, or ``confirmed`` already there);
* ``coldtier.refusals``: creates the store refused, by ``backend`` and
  ``reason`` (``exists``: 412 or EEXIST, then confirmed; ``conflict``: S3's 409);
* ``coldtier.retries``: requests the store's client retried, by ``backend``
  and ``reason`` (``transient``: 5xx, timeout, lost answer; ``conflict``);
* ``coldtier.store.errors``: store failures the engine saw after the
  client's retries, by ``backend`` and ``fault`` (:class:`~coldtier.store.Fault`);
* ``coldtier.archived_through`` (gauge, Unix seconds): the end of the latest
  window archived successfully, by ``backend`` and ``tenant``.

Operations are ``archive``, ``read`` (``read``, ``events``, ``read_tables``,
``read_object``), ``verify`` (``verify``, ``verify_object``) and ``probe``;
``repack`` and ``expire`` are reserved for the lifecycle operations (§10).
A ``verify`` that finds problems counts with outcome ``integrity``.

Attribute values come from closed sets (operations, URL schemes, outcomes,
:class:`~coldtier.store.Fault`), so cardinality is bounded; tenant ids appear
only on ``coldtier.archived_through``, and only when enabled
(``configure(archived_through=True)`` or ``COLDTIER_METRICS_TENANTS=1``), for
at most ``max_tenants`` tenants.

Log records (logger ``coldtier.calls``): one INFO per successful ``archive``,
one WARNING (bad input) or ERROR (anything else) per failed call, DEBUG for
other successful calls; the fields are in ``extra=`` (``operation``,
``backend``, ``archive``, ``outcome``, ``tenant``, ``window_start``,
``window_end``, ``objects``, ``events``, ``bytes``, ``new_objects``,
``seconds``, ``error``, ``reason``).  They hold what ``description()`` and
coldtier's error messages hold, never a credential.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from ._errors import (
    ArchiveReadError,
    ArchiveWriteError,
    IntegrityError,
    InvalidRequest,
    KeyUnavailable,
    PreconditionUnsupported,
)
from ._types import Receipt, VerifyReport

if TYPE_CHECKING:
    from .store import Fault, ObjectStore

__all__ = [
    "answered",
    "configure",
    "failed_request",
    "new_objects",
    "operation",
    "refused",
    "retried",
    "stored",
    "streamed",
]

LOG = logging.getLogger("coldtier.calls")
# A library's records reach only the handlers its user configures: without one,
# logging's last resort would print our warnings on stderr.
logging.getLogger("coldtier").addHandler(logging.NullHandler())

#: Bucket bounds of ``coldtier.call.duration`` (seconds): a local call of a few ms to a slow upload.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: Default most tenants ``coldtier.archived_through`` reports (per process).
MAX_TENANTS = 10_000
TENANTS_ENV = "COLDTIER_METRICS_TENANTS"

_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (InvalidRequest, "invalid"),
    (TypeError, "invalid"),
    (IntegrityError, "integrity"),
    (PreconditionUnsupported, "precondition"),
    (KeyUnavailable, "key_unavailable"),  # shredded, denied or wrong: before read/write errors
    (ArchiveWriteError, "write_error"),
    (ArchiveReadError, "read_error"),
)

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")


class _Instruments:
    def __init__(self, meter: Any, gauge: Callable[[Any], Iterable[Any]]) -> None:
        self.calls = meter.create_counter("coldtier.calls", "{call}", "Public calls by outcome")
        self.duration = meter.create_histogram(
            "coldtier.call.duration",
            "s",
            "Seconds per public call",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.events = meter.create_counter("coldtier.events", "{event}", "Events archived, read or verified")
        self.bytes = meter.create_counter("coldtier.bytes", "By", "Bytes of the objects archived")
        self.objects = meter.create_counter(
            "coldtier.objects", "{object}", "Objects stored: created, or confirmed already there"
        )
        self.refusals = meter.create_counter("coldtier.refusals", "{refusal}", "Creates the store refused")
        self.retries = meter.create_counter("coldtier.retries", "{retry}", "Requests retried by the client")
        self.errors = meter.create_counter(
            "coldtier.store.errors", "{error}", "Store failures the engine saw (after retries)"
        )
        meter.create_observable_gauge(
            "coldtier.archived_through",
            callbacks=[gauge],
            unit="s",
            description="End (Unix seconds) of the latest window archived successfully, per tenant",
        )


class _State:
    """What :func:`configure` set; instruments are built at the first call that needs them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready = False
        self.instruments: _Instruments | None = None
        self.provider: Any = None
        self.tenants = _tenants_from_environment()
        self.max_tenants = MAX_TENANTS
        self.through: dict[tuple[str, str], float] = {}
        self.full_warned = False

    def build(self) -> _Instruments | None:
        with self.lock:
            if not self.ready:
                self.instruments = _make(self.provider)
                self.ready = True
            return self.instruments

    def observe(self, options: Any) -> Iterator[Any]:
        from opentelemetry.metrics import Observation  # noqa: PLC0415 - the extra is optional

        with self.lock:
            items = list(self.through.items())
        for (backend, tenant), end in items:
            yield Observation(end, {"backend": backend, "tenant": tenant})


def _tenants_from_environment() -> bool:
    return os.environ.get(TENANTS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


_STATE = _State()


def _make(provider: Any) -> _Instruments | None:
    try:
        from opentelemetry import metrics  # noqa: PLC0415 - the extra is optional
    except ImportError:
        return None
    from . import __version__  # noqa: PLC0415 - coldtier/__init__ is still importing us

    meter = (provider or metrics.get_meter_provider()).get_meter("coldtier", __version__)
    return _Instruments(meter, _STATE.observe)


def _instruments() -> _Instruments | None:
    state = _STATE
    return state.instruments if state.ready else state.build()


def configure(
    *,
    meter_provider: Any = None,
    archived_through: bool | None = None,
    max_tenants: int | None = None,
) -> None:
    """Where coldtier's metrics go, and whether tenants are named (see :mod:`coldtier.observe`).

    ``meter_provider``: None for OpenTelemetry's global provider.
    ``archived_through``: report the per-tenant gauge; None reads ``COLDTIER_METRICS_TENANTS``.
    ``max_tenants``: the most tenants the gauge names (default 10,000; kept until changed).
    Every call starts the gauge afresh.
    """
    if max_tenants is not None and (type(max_tenants) is not int or max_tenants < 0):
        raise InvalidRequest(f"max_tenants must be a non-negative integer, got {max_tenants!r}")
    state = _STATE
    with state.lock:
        state.provider = meter_provider
        state.ready = False
        state.instruments = None
        state.through = {}
        state.full_warned = False
        state.tenants = _tenants_from_environment() if archived_through is None else bool(archived_through)
        if max_tenants is not None:
            state.max_tenants = max_tenants


# ---------------------------------------------------------------------------
# The public boundary


_SCHEMES: dict[type, str] = {}
_TALLY: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("coldtier_tally", default=None)


def scheme(store: ObjectStore) -> str:
    """The backend attribute: the URL scheme of the store's description (one per store class)."""
    found = _SCHEMES.get(type(store))
    if found is None:
        head, sep, _ = store.description().partition("://")
        found = _SCHEMES[type(store)] = head.lower() if sep and head.isascii() and len(head) < 16 else "other"
    return found


def outcome(exc: BaseException) -> str:
    for kind, name in _OUTCOMES:
        if isinstance(exc, kind):
            return name
    return "error"


def operation(
    name: str,
) -> Callable[[Callable[Concatenate[S, P], R]], Callable[Concatenate[S, P], R]]:
    """Measure and log a public method of an archive whose ``store`` is an :class:`ObjectStore`."""

    def wrap(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
        @functools.wraps(method)
        def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            began = time.perf_counter()
            token = _TALLY.set([0])
            try:
                result = method(self, *args, **kwargs)
            except BaseException as exc:
                _failed(name, self, exc, args=args, kwargs=kwargs, seconds=time.perf_counter() - began)
                raise
            else:
                tally = _TALLY.get() or [0]
                seconds = time.perf_counter() - began
                _succeeded(name, self, result, args=args, kwargs=kwargs, seconds=seconds, new=tally[0])
                return result
            finally:
                _TALLY.reset(token)

        return call

    return wrap


T = TypeVar("T")


def streamed(
    name: str,
) -> Callable[[Callable[Concatenate[S, P], Iterator[T]]], Callable[Concatenate[S, P], Iterator[T]]]:
    """:func:`operation` for a method returning an iterator: measured when the iterator ends.

    A failure while iterating counts as the call's failure; a consumer that
    stops early ends a successful call with the events it took.
    """

    def wrap(method: Callable[Concatenate[S, P], Iterator[T]]) -> Callable[Concatenate[S, P], Iterator[T]]:
        @functools.wraps(method)
        def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
            began = time.perf_counter()
            try:
                items = method(self, *args, **kwargs)  # an eager method checks its arguments here
            except BaseException as exc:
                _failed(name, self, exc, args=args, kwargs=kwargs, seconds=time.perf_counter() - began)
                raise
            return _measured(name, self, items, args=args, kwargs=kwargs, began=began)

        return call

    return wrap


def _measured(
    name: str, archive: Any, items: Iterator[T], *, args: tuple[Any, ...], kwargs: dict[str, Any], began: float
) -> Iterator[T]:
    events = 0
    try:
        for item in items:
            rows = getattr(item, "num_rows", None)  # a table of events, or one Event
            events += rows if isinstance(rows, int) else 1
            yield item
    except GeneratorExit:
        pass
    except BaseException as exc:
        _failed(name, archive, exc, args=args, kwargs=kwargs, seconds=time.perf_counter() - began)
        raise
    seconds = time.perf_counter() - began
    _succeeded(name, archive, events, args=args, kwargs=kwargs, seconds=seconds, new=0)


def new_objects(count: int) -> None:
    """The engine's receipt for the current call: ``count`` objects were newly created."""
    tally = _TALLY.get()
    if tally is not None:
        tally[0] += count


def _args(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
    """``(tenant, start, end)`` as passed (not yet validated), None where not given."""
    if name == "probe":
        return None, None, None
    names = ("tenant_id", "start", "end")
    values = [args[i] if i < len(args) else kwargs.get(n) for i, n in enumerate(names)]
    first = values[0]
    if first is not None and not isinstance(first, str):  # read_object / verify_object: an ArchivedObject
        return getattr(first, "tenant_id", None), getattr(first, "start", None), getattr(first, "end", None)
    return values[0], values[1], values[2]


def _never_raises(fn: Callable[P, None]) -> Callable[P, None]:
    """Observing a call must never fail it (its objects may be stored already)."""

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            LOG.debug("observing a call failed", exc_info=True)

    return guarded


@_never_raises
def _succeeded(
    name: str,
    archive: Any,
    result: Any,
    *,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    seconds: float,
    new: int,
) -> None:
    store = archive.store
    backend = scheme(store)
    problems = isinstance(result, VerifyReport) and not result.ok
    result_outcome = "integrity" if problems else "ok"
    events = _events(result)
    inst = _instruments()
    if inst is not None:
        attrs = {"operation": name, "backend": backend, "outcome": result_outcome}
        inst.calls.add(1, attrs)
        inst.duration.record(seconds, attrs)
        if events:
            inst.events.add(events, {"operation": name, "backend": backend})
        if isinstance(result, Receipt) and result.bytes:
            inst.bytes.add(result.bytes, {"operation": name, "backend": backend})
    tenant, start, end = _args(name, args, kwargs)
    if name == "archive" and _STATE.tenants and isinstance(end, datetime):
        _archived_through(backend, tenant, end)
    level = logging.WARNING if problems else logging.INFO if name == "archive" else logging.DEBUG
    if not LOG.isEnabledFor(level):
        return
    fields: dict[str, Any] = {
        "operation": name,
        "backend": backend,
        "archive": store.description(),
        "outcome": result_outcome,
        "seconds": round(seconds, 6),
        **_tenant_fields(tenant, start, end),
        "events": events,
    }
    if isinstance(result, Receipt):
        fields.update(objects=len(result.keys), bytes=result.bytes, new_objects=new)
        message = (
            f"archived {result.events} events of {tenant} [{fields.get('window_start')}, "
            f"{fields.get('window_end')}] in {len(result.keys)} object{'' if len(result.keys) == 1 else 's'} "
            f"({new} new, {result.bytes} bytes) "
            f"in {seconds:.3f} s"
        )
    elif isinstance(result, VerifyReport):
        fields.update(objects=result.objects, problems=len(result.problems))
        message = f"verify of {fields['archive']}: {result.objects} objects, {len(result.problems)} problems"
    else:
        message = f"{name} in {fields['archive']}: {events} events in {seconds:.3f} s"
    LOG.log(level, message, extra=fields)


@_never_raises
def _failed(
    name: str,
    archive: Any,
    exc: BaseException,
    *,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    seconds: float,
) -> None:
    if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not the archive's failure
        return
    store = archive.store
    backend = scheme(store)
    result_outcome = outcome(exc)
    inst = _instruments()
    if inst is not None:
        attrs = {"operation": name, "backend": backend, "outcome": result_outcome}
        inst.calls.add(1, attrs)
        inst.duration.record(seconds, attrs)
    level = logging.WARNING if result_outcome == "invalid" else logging.ERROR
    if not LOG.isEnabledFor(level):
        return
    tenant, start, end = _args(name, args, kwargs)
    reason = " ".join(str(exc).split())[:500]
    fields = {
        "operation": name,
        "backend": backend,
        "archive": store.description(),
        "outcome": result_outcome,
        "seconds": round(seconds, 6),
        **_tenant_fields(tenant, start, end),
        "error": type(exc).__name__,
        "reason": reason,
    }
    who = f" of {fields['tenant']}" if "tenant" in fields else ""
    LOG.log(level, f"{name}{who} in {fields['archive']} failed ({result_outcome}): {reason}", extra=fields)


def _tenant_fields(tenant: Any, start: Any, end: Any) -> dict[str, Any]:
    """What the caller named, where it is plain: a tenant id of at most 128 characters, datetimes."""
    fields: dict[str, Any] = {}
    if isinstance(tenant, str) and len(tenant) <= 128:
        fields["tenant"] = tenant
    if isinstance(start, datetime):
        fields["window_start"] = start.isoformat()
    if isinstance(end, datetime):
        fields["window_end"] = end.isoformat()
    return fields


def _events(result: Any) -> int:
    if isinstance(result, int):  # counted by _measured
        return result
    if isinstance(result, Receipt | VerifyReport):
        return result.events
    num_rows = getattr(result, "num_rows", None)  # a pyarrow.Table
    return num_rows if isinstance(num_rows, int) else 0


def _archived_through(backend: str, tenant: Any, end: datetime) -> None:
    if not isinstance(tenant, str) or end.tzinfo is None:
        return
    value = end.timestamp()
    state = _STATE
    key = (backend, tenant)
    with state.lock:
        known = state.through.get(key)
        if known is None and len(state.through) >= state.max_tenants:
            warn, state.full_warned = not state.full_warned, True
        else:
            warn = False
            if known is None or value > known:
                state.through[key] = value
    if warn:
        LOG.warning(
            "coldtier.archived_through reports at most %d tenants; further tenants are left out",
            state.max_tenants,
            extra={"max_tenants": state.max_tenants},
        )


# ---------------------------------------------------------------------------
# Inside the engine and the backends


def answered(store: ObjectStore, created: bool) -> None:
    """A create-only put returned: a refusal (the object exists) is counted before it is confirmed."""
    if not created:
        inst = _instruments()
        if inst is not None:
            inst.refusals.add(1, {"backend": scheme(store), "reason": "exists"})


def stored(store: ObjectStore, created: bool) -> None:
    """One object is stored: ``created`` by this put, or refused and confirmed already there."""
    inst = _instruments()
    if inst is not None:
        inst.objects.add(1, {"backend": scheme(store), "state": "created" if created else "confirmed"})


def failed_request(store: ObjectStore, fault: Fault | None) -> None:
    """A store's request failed (after its client's retries); ``fault`` as the store classified it."""
    inst = _instruments()
    if inst is not None:
        inst.errors.add(
            1, {"backend": scheme(store), "fault": "unknown" if fault is None else fault.name.lower()}
        )


_RETRY_REASONS = frozenset({"transient", "conflict"})


def retried(store: ObjectStore, reason: str = "transient", count: int = 1) -> None:
    """For backends: the store's client retried ``count`` requests (a 5xx, a lost answer, a 409).

    ``reason``: ``"transient"`` (a server error, timeout or lost connection
    that the client retried) or ``"conflict"`` (a concurrent conditional write,
    S3's 409).
    """
    if count <= 0:
        return
    inst = _instruments()
    if inst is not None:
        reason = reason if reason in _RETRY_REASONS else "other"
        inst.retries.add(count, {"backend": scheme(store), "reason": reason})


def refused(store: ObjectStore, reason: str) -> None:
    """For backends: the store refused a create for ``reason`` other than "it exists" (``"conflict"``)."""
    inst = _instruments()
    if inst is not None:
        reason = reason if reason in _RETRY_REASONS | {"exists"} else "other"
        inst.refusals.add(1, {"backend": scheme(store), "reason": reason})
