"""Parquet Modular Encryption under a tenant's key: what the engine encrypts and how it decrypts.

``entity_id``, ``payload`` and ``metadata`` are encrypted (AES-GCM) under
data keys that PME makes for each object; those are wrapped (double
wrapping: a per-object key-encryption key) by the tenant's key through the
:class:`~coldtier.keys.KeyProvider`, and the wrapped key material lives in
the object itself.  The footer stays plaintext (signed), and so do
``event_id``, ``event_type``, ``timestamp`` and ``version``: listing,
row-group pruning, dedupe and ``verify`` need no key.  The footer records
the tenant key's id (``coldtier.tenant_key``), never key material.

Every object gets a fresh :class:`~pyarrow.parquet.encryption.CryptoFactory`,
so no unwrapped key outlives the call that needed it (a shredded key is
unusable at once, in this process too).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe

from ._errors import IntegrityError, KeyUnavailable
from .keys import KeyProvider, key_tenant, open_key_provider

__all__ = ["ENCRYPTED_COLUMNS", "FOOTER_KEY", "PLAIN_COLUMNS", "Cipher", "sealed_by"]

#: The columns that can carry personal data (DESIGN.md §9).
ENCRYPTED_COLUMNS = ("entity_id", "payload", "metadata")
PLAIN_COLUMNS = ("event_id", "event_type", "timestamp", "version")
#: Footer entry naming the tenant key an encrypted object's data keys are wrapped by.
FOOTER_KEY = "coldtier.tenant_key"


def sealed_by(meta: dict[str, str]) -> str | None:
    """The tenant key id of an encrypted object's footer; None for a plaintext object."""
    return meta.get(FOOTER_KEY)


class _Client(pe.KmsClient):  # type: ignore[misc]  # pyarrow is untyped
    """PME's key service, answered by a :class:`KeyProvider` for one tenant only."""

    def __init__(self, provider: KeyProvider, tenant: str) -> None:
        super().__init__()
        self._provider = provider
        self._tenant = tenant

    def _bound(self, key_id: str) -> None:
        if key_tenant(key_id) != self._tenant:
            raise IntegrityError(
                f"an object of tenant {self._tenant!r} is encrypted under tenant {key_tenant(key_id)!r}'s key"
            )

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        self._bound(master_key_identifier)
        return base64.b64encode(self._provider.wrap(master_key_identifier, key_bytes)).decode()

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        self._bound(master_key_identifier)
        try:
            wrapped = base64.b64decode(wrapped_key, validate=True)
        except (ValueError, binascii.Error):
            raise IntegrityError("an encrypted object's key material is corrupted") from None
        return self._provider.unwrap(master_key_identifier, wrapped)


class Cipher:
    """Encryption and decryption properties for one archive's objects, from its key provider."""

    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider

    @classmethod
    def of(cls, encryption: Any) -> Cipher:
        """The cipher the ``encryption`` option names (a key provider URL or instance)."""
        return encryption if isinstance(encryption, Cipher) else cls(open_key_provider(encryption))

    def _factory(self, tenant: str) -> pe.CryptoFactory:
        provider = self.provider
        return pe.CryptoFactory(lambda _config: _Client(provider, tenant))

    def encryption(self, tenant: str) -> tuple[str, pq.FileEncryptionProperties]:
        """The tenant key id and fresh encryption properties for one new object of ``tenant``."""
        key_id = self.provider.current(tenant, create=True)
        config = pe.EncryptionConfiguration(
            footer_key=key_id,
            column_keys={key_id: list(ENCRYPTED_COLUMNS)},
            encryption_algorithm="AES_GCM_V1",
            plaintext_footer=True,
            double_wrapping=True,
            internal_key_material=True,
        )
        return key_id, self._factory(tenant).file_encryption_properties(pe.KmsConnectionConfig(), config)

    def decryption(self, tenant: str, key_id: str) -> pq.FileDecryptionProperties:
        """Decryption properties for one object of ``tenant`` sealed by ``key_id``."""
        if key_tenant(key_id) != tenant:
            raise IntegrityError(
                f"an object of tenant {tenant!r} is encrypted under tenant {key_tenant(key_id)!r}'s key"
            )
        return self._factory(tenant).file_decryption_properties(
            pe.KmsConnectionConfig(), pe.DecryptionConfiguration()
        )

    def __repr__(self) -> str:
        return f"<Cipher {self.provider.description()}>"


def no_key(tenant: str, key_id: str) -> KeyUnavailable:
    """The error for an encrypted object read by an archive opened without ``encryption``."""
    return KeyUnavailable(
        f"the objects of tenant {tenant!r} are encrypted (key {key_id}); "
        "open the archive with encryption=<key provider URL>",
        tenant_id=tenant,
    )
