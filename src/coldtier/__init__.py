"""coldtier: the cold tier of an event store.

Events past their retention TTL are archived, create-only and
content-addressed, into a local directory, S3, R2 or GCS, selected by URL::

    import coldtier

    archive = coldtier.open_archive("s3://bucket/prefix?region=eu-west-1")
    receipt = archive.archive("acme", start, end, events)   # durable when it returns
    table = archive.read("acme", start=day, end=day_end)    # pyarrow.Table
    report = archive.verify()                               # re-hash everything
"""

from __future__ import annotations

from ._archive import Archive
from ._digest import logical_digest
from ._errors import (
    ArchiveNotFound,
    ArchiveReadError,
    ArchiveWriteError,
    ColdTierError,
    IntegrityError,
    InvalidRequest,
    KeyUnavailable,
    MissingDependency,
    PreconditionUnsupported,
    UnknownBackend,
)
from ._format import SCHEMA
from ._registry import available_backends, load_backend, open_archive, register_backend
from ._types import ArchivedObject, Event, Problem, Receipt, VerifyReport

__version__ = "0.1.0"

__all__ = [
    "Archive",
    "ArchiveNotFound",
    "ArchiveReadError",
    "ArchiveWriteError",
    "ArchivedObject",
    "ColdTierError",
    "Event",
    "IntegrityError",
    "InvalidRequest",
    "KeyUnavailable",
    "MissingDependency",
    "PreconditionUnsupported",
    "Problem",
    "Receipt",
    "SCHEMA",
    "UnknownBackend",
    "VerifyReport",
    "__version__",
    "available_backends",
    "load_backend",
    "logical_digest",
    "open_archive",
    "register_backend",
]
