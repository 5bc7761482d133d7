"""Masters: what wraps the tenant keys of a keyring (none, a passphrase, a master key).

A :class:`Master` is a configured secret; bound to a keyring's stored
parameters (salt, check value) it becomes a :class:`Sealer` that wraps and
unwraps tenant keys.  ``Sealer.id`` names the master without revealing it.
A KMS master lives in :mod:`coldtier.keys.aws_kms`.
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import os
from typing import Any

from .._errors import InvalidRequest, KeyUnavailable

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
except ImportError as exc:  # pragma: no cover - the registry names the extra
    raise ImportError(str(exc), name="cryptography") from exc

__all__ = ["KEY_BYTES", "Master", "MasterKey", "NoMaster", "Passphrase", "Sealer", "b64", "unb64"]

KEY_BYTES = 32
_CHECK = b"coldtier keyring check"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text, validate=True)




class Sealer(abc.ABC):
    """A bound master: wraps and unwraps tenant keys.  ``id`` names it without revealing it."""

    id: str

    @abc.abstractmethod
    def seal(self, plain: bytes, aad: bytes) -> bytes: ...

    @abc.abstractmethod
    def open(self, sealed: bytes, aad: bytes) -> bytes:
        """Raises ``ValueError`` when ``sealed`` was not sealed by this master for ``aad``."""


class Master(abc.ABC):
    """How a keyring is wrapped, before its stored parameters (salt, check value) are known."""

    kind: str

    @abc.abstractmethod
    def bind(self, params: dict[str, Any] | None, where: str) -> tuple[Sealer, dict[str, Any]]:
        """The sealer for stored ``params`` (checking the secret), or new params when None."""


class _Aes(Sealer):
    def __init__(self, key: bytes, id: str) -> None:
        self._aead = AESGCM(key)
        self.id = id

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plain, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], aad)
        except InvalidTag:
            raise ValueError("authentication failed") from None

    def __repr__(self) -> str:
        return f"<sealer {self.id}>"


class _Plain(Sealer):
    id = "none"

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        return plain

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        return sealed


def _checked(sealer: Sealer, params: dict[str, Any], where: str, wrong: str) -> Sealer:
    try:
        if sealer.open(unb64(params.get("check")), b"check") != _CHECK:
            raise ValueError("check value differs")
    except (ValueError, binascii.Error):
        raise KeyUnavailable(f"{where}: {wrong} (its keys stay locked)") from None
    return sealer


class NoMaster(Master):
    """Tenant keys stored unwrapped; the keyring is protected by its file modes alone."""

    kind = "none"

    def bind(self, params: dict[str, Any] | None, where: str) -> tuple[Sealer, dict[str, Any]]:
        return _Plain(), {"kind": self.kind, "id": _Plain.id}


class Passphrase(Master):
    """Tenant keys wrapped by a key derived from a passphrase (scrypt, a random salt per keyring)."""

    kind = "passphrase"

    def __init__(self, passphrase: str | bytes) -> None:
        if not passphrase:
            raise InvalidRequest("the keyring passphrase is empty")
        self._secret = passphrase.encode() if isinstance(passphrase, str) else bytes(passphrase)

    def _derive(self, salt: bytes) -> bytes:
        return Scrypt(salt=salt, length=KEY_BYTES, n=2**15, r=8, p=1).derive(self._secret)

    def bind(self, params: dict[str, Any] | None, where: str) -> tuple[Sealer, dict[str, Any]]:
        if params is None:
            salt = os.urandom(16)
            sealer = _Aes(self._derive(salt), f"passphrase:{salt.hex()[:12]}")
            check = b64(sealer.seal(_CHECK, b"check"))
            return sealer, {"kind": self.kind, "id": sealer.id, "salt": b64(salt), "check": check}
        try:
            salt = unb64(params.get("salt"))
        except (ValueError, binascii.Error):
            raise KeyUnavailable(f"{where}: its passphrase salt is corrupted") from None
        return _checked(_Aes(self._derive(salt), str(params.get("id"))), params, where, "wrong passphrase"), params

    def __repr__(self) -> str:
        return "<Passphrase ***>"


class MasterKey(Master):
    """Tenant keys wrapped by a 32-byte master key (base64 or hex), e.g. from the environment."""

    kind = "master-key"

    def __init__(self, key: str | bytes) -> None:
        self._key = _parse_master_key(key)

    def bind(self, params: dict[str, Any] | None, where: str) -> tuple[Sealer, dict[str, Any]]:
        fingerprint = hashlib.sha256(b"coldtier master key id\0" + self._key).hexdigest()[:12]
        sealer = _Aes(self._key, f"master-key:{fingerprint}")
        if params is None:
            return sealer, {"kind": self.kind, "id": sealer.id, "check": b64(sealer.seal(_CHECK, b"check"))}
        return _checked(sealer, params, where, "wrong master key"), params

    def __repr__(self) -> str:
        return "<MasterKey ***>"


def _parse_master_key(key: str | bytes) -> bytes:
    if isinstance(key, bytes) and len(key) == KEY_BYTES:
        return key
    text = key.decode() if isinstance(key, bytes) else str(key)
    text = text.strip()
    for decode in (bytes.fromhex, lambda t: base64.b64decode(t, validate=True)):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == KEY_BYTES:
            return raw
    raise InvalidRequest("the master key must be 32 bytes, as 64 hex digits or base64")
