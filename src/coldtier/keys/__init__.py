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
import importlib
import re
import threading
import warnings
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from .._errors import InvalidRequest, MissingDependency, UnknownBackend

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
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+_.-]*$")

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
_lock = threading.Lock()
_registered: dict[str, str | type[KeyProvider]] = {}
_entry_points: dict[str, str] | None = None


def _usable(points: list[EntryPoint]) -> dict[str, str]:
    found: dict[str, str] = {}
    for ep in points:
        dist = ep.dist.name if ep.dist is not None else None
        if ep.name in _BUILTIN or not _SCHEME_RE.match(ep.name):
            if dist != "coldtier" and ep.value != _BUILTIN.get(ep.name):
                why = "is a built-in key provider" if ep.name in _BUILTIN else "is not a valid scheme"
                warnings.warn(
                    f"ignoring the {GROUP} entry point {ep.name!r} = {ep.value!r} of "
                    f"{dist or 'an unknown distribution'}: {ep.name!r} {why}",
                    RuntimeWarning,
                    stacklevel=4,
                )
            continue
        found[ep.name] = ep.value
    return found


def _discovered() -> dict[str, str]:
    global _entry_points  # noqa: PLW0603 - one lazily filled cache
    with _lock:
        if _entry_points is None:
            _entry_points = _usable(list(entry_points(group=GROUP)))
        return _entry_points


def _reset_entry_points(extra: list[EntryPoint] | None = None) -> None:
    """Forget discovered entry points (tests), optionally using ``extra`` instead."""
    global _entry_points  # noqa: PLW0603 - one lazily filled cache
    usable = None if extra is None else _usable(extra)
    with _lock:
        _entry_points = usable


def _table() -> ChainMap[str, str | type[KeyProvider]]:
    return ChainMap(_registered, _discovered(), dict(_BUILTIN))  # type: ignore[arg-type]


def available_key_providers() -> Mapping[str, str]:
    """Scheme → ``"module:Class"`` of every key provider: built-ins, entry points, registered."""
    return MappingProxyType(
        {
            scheme: t if isinstance(t, str) else f"{t.__module__}:{t.__qualname__}"
            for scheme, t in sorted(_table().items())
        }
    )


def register_key_provider(scheme: str, cls: type[KeyProvider] | str, *, clobber: bool = False) -> None:
    """Register ``cls`` (a :class:`KeyProvider` subclass or ``"module:Class"``) for ``scheme``."""
    if not isinstance(scheme, str) or not _SCHEME_RE.match(scheme):
        raise InvalidRequest(f"invalid key provider scheme {scheme!r}: need ^[a-z][a-z0-9+_.-]*$")
    if not clobber and scheme in _table():
        raise InvalidRequest(f"a key provider for {scheme}:// is already registered; pass clobber=True")
    if not isinstance(cls, str) and not (isinstance(cls, type) and issubclass(cls, KeyProvider)):
        raise InvalidRequest(f"{cls!r} is not a coldtier.keys.KeyProvider subclass or a 'module:Class' string")
    with _lock:
        _registered[scheme] = cls


def _load(scheme: str) -> type[KeyProvider]:
    target = _table().get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(_table()))
        raise UnknownBackend(f"no coldtier key provider for {scheme}://; known: {known}")
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra, modules = _EXTRAS.get(scheme, ("", frozenset()))
        missing = (exc.name or "").split(".")[0]
        if extra and missing in modules:
            raise MissingDependency(
                f"the {scheme}:// key provider needs {missing}: pip install 'coldtier[{extra}]'"
            ) from exc
        raise MissingDependency(f"the {scheme}:// key provider ({target}) could not be imported: {exc}") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, KeyProvider)):
        raise UnknownBackend(f"{target} for {scheme}:// is not a coldtier.keys.KeyProvider subclass")
    return cls


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


