"""Key providers: where each tenant's key lives, and how it is shredded (DESIGN.md §9).

An archive opened with ``encryption=<key provider URL>`` (or a
:class:`KeyProvider` instance) encrypts the columns that can carry personal
data -- ``entity_id``, ``payload``, ``metadata`` -- with Parquet Modular
Encryption under the tenant's key.  The provider is a seam of its own:

=====================================  ==============================================  =========
URL                                    provider                                        extra
=====================================  ==============================================  =========
``file:///path/keyring``               a local keyring directory (the default)         ``crypto``
``aws-kms:///path/keyring?key_id=...``  the same keyring, tenant keys wrapped by AWS KMS  ``kms``
=====================================  ==============================================  =========

Third-party providers declare an entry point in the group ``coldtier.keys``
(name = URL scheme, value = ``module:Class``, a :class:`KeyProvider` subclass);
an entry point never takes a built-in scheme (it is ignored with a warning).

**Note for implementers.** A provider never hands a tenant's key to the
engine: it wraps and unwraps the data keys Parquet Modular Encryption makes
for each object (:meth:`KeyProvider.wrap` / :meth:`KeyProvider.unwrap`), so a
provider may keep its keys in a KMS or an HSM.  Key ids are
``<tenant>/<text>`` and carry no secret (they are written into each
object's footer).  No key material, passphrase or credential may appear in
:meth:`description`, ``repr``, log records or exception messages.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from .._errors import InvalidRequest
from .._plugins import Plugins

__all__ = [
    "KeyProvider",
    "KeyState",
    "Shredded",
    "available_key_providers",
    "key_tenant",
    "open_key_provider",
    "register_key_provider",
]

GROUP = "coldtier.keys"

KeyState = Literal["live", "shredded", "missing"]


@dataclass(frozen=True, slots=True)
class Shredded:
    """What :meth:`KeyProvider.shred` destroyed: the tenant's key ids and when it takes effect."""

    tenant_id: str
    key_ids: tuple[str, ...]
    effective: str  # e.g. "now" or "when KMS deletes the key on 2026-12-08"

    def __str__(self) -> str:
        ids = ", ".join(self.key_ids) or "no key"
        return f"tenant {self.tenant_id!r}: shredded {ids}; unreadable {self.effective}"


def key_tenant(key_id: str) -> str:
    """The tenant a key id ``<tenant>/<text>`` belongs to."""
    return key_id.partition("/")[0]


class KeyProvider(abc.ABC):
    """Per-tenant keys: created on first use, wrapping data keys, shredded on request."""

    #: The URL scheme this provider serves.
    scheme: ClassVar[str] = ""

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str, /, **options: Any) -> KeyProvider:
        """The provider a URL names; unknown options are :class:`~coldtier.InvalidRequest`."""

    @abc.abstractmethod
    def description(self) -> str:
        """Where the keys live, e.g. ``file:///srv/keyring``: never a secret."""

    @abc.abstractmethod
    def current(self, tenant_id: str, *, create: bool = True) -> str:
        """The id of the key new objects of ``tenant_id`` are encrypted under.

        Creates the tenant's first key when it has none (durably, before
        returning) if ``create``.  Raises :class:`~coldtier.KeyUnavailable`
        with ``shredded=True`` when the tenant's key was shredded and no new
        key was made (:meth:`new_key`): shredded data is never silently mixed
        with new data under one tenant.
        """

    @abc.abstractmethod
    def wrap(self, key_id: str, data_key: bytes) -> bytes:
        """``data_key`` encrypted (authenticated) under the key ``key_id``."""

    @abc.abstractmethod
    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """The data key :meth:`wrap` wrapped; :class:`~coldtier.KeyUnavailable` when it cannot be.

        ``shredded=True`` only when the key was shredded; a denied, missing,
        wrong or corrupted key says which it is.
        """

    @abc.abstractmethod
    def state(self, key_id: str) -> KeyState:
        """Whether ``key_id`` is live, shredded, or unknown to this provider (no secret is used)."""

    @abc.abstractmethod
    def shred(self, tenant_id: str) -> Shredded:
        """Destroy every key of ``tenant_id``, durably, before returning."""

    @abc.abstractmethod
    def new_key(self, tenant_id: str) -> str:
        """Create the next key of a tenant whose key was shredded; its id.

        :class:`~coldtier.InvalidRequest` when the tenant still has a live key, or none yet.
        """

    def rotate(self, to: KeyProvider) -> int:
        """Rewrap every tenant key under ``to``'s master; how many were rewrapped.

        Objects are not rewritten: they name their tenant key, which keeps its id.
        """
        raise InvalidRequest(f"{self.description()} does not rotate its keys")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description()}>"


# ---------------------------------------------------------------------------
# Discovery: the same rules as the backends' registry (coldtier._registry).

_BUILTIN: Mapping[str, str] = {
    "file": "coldtier.keys.keyring:FileKeys",
    "aws-kms": "coldtier.keys.aws_kms:AwsKmsKeys",
}
_EXTRAS: Mapping[str, tuple[str, frozenset[str]]] = {
    "file": ("crypto", frozenset({"cryptography"})),
    "aws-kms": ("kms", frozenset({"cryptography", "boto3", "botocore"})),
}
_plugins: Plugins[type[KeyProvider]] = Plugins(
    GROUP,
    "key provider",
    bases=(KeyProvider,),
    kinds="coldtier.keys.KeyProvider",
    builtin=_BUILTIN,
    extras=_EXTRAS,
)
_registered = _plugins.registered
_reset_entry_points = _plugins.reset  # tests: forget discovered entry points, or use others
_load = _plugins.load


def available_key_providers() -> Mapping[str, str]:
    """Scheme → ``"module:Class"`` of every key provider: built-ins, entry points, registered."""
    return _plugins.available()


def register_key_provider(scheme: str, cls: type[KeyProvider] | str, *, clobber: bool = False) -> None:
    """Register ``cls`` (a :class:`KeyProvider` subclass or ``"module:Class"``) for ``scheme``."""
    _plugins.register(scheme, cls, clobber=clobber)


def open_key_provider(url: str | KeyProvider, /, **options: Any) -> KeyProvider:
    """The key provider ``url`` names (a provider passed in is returned as it is)."""
    if isinstance(url, KeyProvider):
        if options:
            raise InvalidRequest("options go to the key provider's constructor, not with an instance")
        return url
    if not isinstance(url, str) or "://" not in url:
        raise InvalidRequest(
            "encryption must be a key provider URL (file:///path/keyring, aws-kms:///path/keyring?key_id=...) "
            "or a coldtier.keys.KeyProvider"
        )
    return _load(urlsplit(url).scheme.lower()).from_url(url, **options)


