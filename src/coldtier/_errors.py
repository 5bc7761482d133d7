"""The errors coldtier raises: one root, builtins mixed in.

::

    ColdTierError
    ├── InvalidRequest(ColdTierError, ValueError)        bad input; nothing was written
    ├── UnknownBackend(ColdTierError, LookupError)       scheme not registered; lists known schemes
    ├── MissingDependency(ColdTierError, ImportError)    names the extra: pip install 'coldtier[s3]'
    ├── ArchiveWriteError(ColdTierError, OSError)        not durable; the caller must keep its originals
    ├── ArchiveReadError(ColdTierError, OSError)         the store failed while listing or reading (after its retries)
    │   └── ArchiveNotFound(ArchiveReadError, FileNotFoundError)  the root, bucket or container does not exist
    ├── IntegrityError(ColdTierError)                    stored bytes don't match their digest / footer
    ├── KeyUnavailable(ColdTierError, PermissionError)   an encrypted object's key is missing, denied or shredded
    └── PreconditionUnsupported(ColdTierError)           backend ignores create-only writes

Because the builtins are mixed in, ``except ValueError`` still catches bad
input and ``except OSError`` still catches a failed write.
"""

from __future__ import annotations

__all__ = [
    "ArchiveNotFound",
    "ArchiveReadError",
    "ArchiveWriteError",
    "ColdTierError",
    "IntegrityError",
    "InvalidRequest",
    "KeyUnavailable",
    "MissingDependency",
    "PreconditionUnsupported",
    "UnknownBackend",
]


class ColdTierError(Exception):
    """Root of every error coldtier raises on purpose."""


class InvalidRequest(ColdTierError, ValueError):
    """The request is malformed; nothing was written."""


class UnknownBackend(ColdTierError, LookupError):
    """No backend is registered for the URL's scheme."""


class MissingDependency(ColdTierError, ImportError):
    """The backend needs an optional extra that is not installed."""


class ArchiveWriteError(ColdTierError, OSError):
    """The batch is not durably stored; the caller must keep its originals."""


class ArchiveReadError(ColdTierError, OSError):
    """The store failed while listing or reading, after its own retries."""


class ArchiveNotFound(ArchiveReadError, FileNotFoundError):
    """The archive's root, bucket or container does not exist (never "an empty archive")."""


class IntegrityError(ColdTierError):
    """Stored bytes do not match their digest, footer or schema."""


class KeyUnavailable(ColdTierError, PermissionError):
    """A tenant's key cannot be used: shredded (``shredded`` is True), missing, denied or wrong.

    ``tenant_id`` names the tenant.  The message says which of these it is and
    never carries key material.
    """

    def __init__(self, message: str, *, tenant_id: str | None = None, shredded: bool = False) -> None:
        super().__init__(message)
        self.tenant_id = tenant_id
        self.shredded = shredded

    def __reduce__(self) -> tuple[object, ...]:
        return (_key_unavailable, (str(self), self.tenant_id, self.shredded))

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _key_unavailable(message: str, tenant_id: str | None, shredded: bool) -> KeyUnavailable:
    return KeyUnavailable(message, tenant_id=tenant_id, shredded=shredded)


class PreconditionUnsupported(ColdTierError):
    """The backend does not honour create-only writes."""
