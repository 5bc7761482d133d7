"""The local keyring: one directory of wrapped tenant keys (``file:///path/keyring``).

Layout (docs/FORMAT.md, "Keyring")::

    keyring.json             how tenant keys are wrapped: the master (none, passphrase, master key, KMS)
    <tenant>/<n>.key         tenant key n, wrapped by the master (mode 0600, written create-only, fsynced)
    <tenant>/<n>.shredded    tombstone: key n was shredded (written before the key file is removed)

A tenant's key is 32 random bytes, created on first use; it wraps (AES-GCM,
the key id as associated data) the data keys Parquet Modular Encryption
makes for each object.  The keyring itself is wrapped by a *master*
(:mod:`coldtier.keys._masters`, or an AWS KMS key: :mod:`coldtier.keys.aws_kms`).
Rotation rewraps every tenant key under a new master; tenant keys keep their
ids, so no object is rewritten.
"""

from __future__ import annotations

import binascii
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .._errors import InvalidRequest, KeyUnavailable
from .._options import OptionSpec, parse_url
from . import KeyProvider, KeyState, Shredded, key_tenant
from ._files import create_file, fsync_dir, make_dir, replace_file
from ._masters import KEY_BYTES, Master, MasterKey, NoMaster, Passphrase, Sealer, b64, unb64

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as exc:  # pragma: no cover - the registry names the extra
    raise ImportError(str(exc), name="cryptography") from exc

__all__ = ["FileKeys", "Keyring", "KeyringProvider", "Master", "Sealer", "keyring_path"]

_FORMAT = 1


# ---------------------------------------------------------------------------
# The keyring


class Keyring:
    """A directory of tenant keys wrapped by one master.  Thread-safe; one process rotates at a time."""

    def __init__(self, root: Path, master: Master, label: str) -> None:
        self.root = root
        self._master = master
        self._label = label  # what messages call this keyring (its URL, no secret)
        self._sealer: Sealer | None = None
        self._lock = threading.Lock()

    # -- the master ------------------------------------------------------------

    def _read_json(self, path: Path, tenant: str | None = None) -> dict[str, Any]:
        try:
            value = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            what = f"tenant key file {path.relative_to(self.root)}" if tenant else path.name
            raise KeyUnavailable(
                f"{self._label}: {what} is not a coldtier key file (corrupted?): {type(exc).__name__}",
                tenant_id=tenant,
            ) from None
        if not isinstance(value, dict) or value.get("format") != _FORMAT:
            raise KeyUnavailable(f"{self._label}: {path.name} is not a coldtier keyring file", tenant_id=tenant)
        return value

    def sealer(self, *, create: bool) -> Sealer | None:
        """The bound master; None when the keyring does not exist yet and ``create`` is False."""
        with self._lock:
            if self._sealer is not None:
                return self._sealer
            path = self.root / "keyring.json"
            try:
                params: dict[str, Any] | None = self._read_json(path)["master"]
            except FileNotFoundError:
                params = None
            except (KeyError, TypeError):
                raise KeyUnavailable(f"{self._label}: keyring.json is corrupted") from None
            if params is None:
                if not create:
                    return None
                make_dir(self.root)
                sealer, params = self._master.bind(None, self._label)
                if not create_file(path, _dump({"format": _FORMAT, "master": params})):
                    return self._sealer_after_race()
            else:
                self._refuse_other_kind(params)
                sealer, _ = self._master.bind(params, self._label)
            self._sealer = sealer
            return sealer

    def _sealer_after_race(self) -> Sealer:
        params = self._read_json(self.root / "keyring.json")["master"]
        self._refuse_other_kind(params)
        self._sealer = self._master.bind(params, self._label)[0]
        return self._sealer

    def _refuse_other_kind(self, params: Any) -> None:
        kind = params.get("kind") if isinstance(params, dict) else None
        if kind != self._master.kind:
            raise KeyUnavailable(
                f"{self._label}: the keyring is wrapped by {kind or 'an unknown master'}, "
                f"not {self._master.kind} (give the matching passphrase_env / master_key_env / key_id)"
            )

    # -- tenant keys -----------------------------------------------------------

    def _dir(self, tenant: str) -> Path:
        return self.root / tenant

    def _generations(self, tenant: str) -> tuple[set[int], set[int]]:
        """Generations with a key file and with a tombstone."""
        live: set[int] = set()
        dead: set[int] = set()
        try:
            names = os.listdir(self._dir(tenant))
        except FileNotFoundError:
            return live, dead
        for name in names:
            stem, _, suffix = name.partition(".")
            if stem.isdigit() and suffix in ("key", "shredded"):
                (live if suffix == "key" else dead).add(int(stem))
        return live, dead

    def current(self, tenant: str, *, create: bool) -> str:
        live, dead = self._generations(tenant)
        latest = max(live | dead, default=0)
        if latest in dead:
            raise KeyUnavailable(
                f"the key of tenant {tenant!r} ({tenant}/{latest}) was shredded; archiving for it needs a new key "
                "(Archive.new_key, or coldtier archive --new-key), so shredded and new data are never mixed",
                tenant_id=tenant,
                shredded=True,
            )
        if latest:
            return f"{tenant}/{latest}"
        if not create:
            raise KeyUnavailable(f"tenant {tenant!r} has no key in {self._label}", tenant_id=tenant)
        return self._create(tenant, 1)

    def _create(self, tenant: str, generation: int) -> str:
        sealer = self.sealer(create=True)
        assert sealer is not None
        key_id = f"{tenant}/{generation}"
        make_dir(self._dir(tenant))
        body = {"format": _FORMAT, "key_id": key_id, "master": sealer.id}
        body["wrapped"] = b64(sealer.seal(os.urandom(KEY_BYTES), key_id.encode()))
        create_file(self._path(key_id, "key"), _dump(body))  # a concurrent creator's key wins: same id
        return key_id

    def new_key(self, tenant: str) -> str:
        live, dead = self._generations(tenant)
        latest = max(live | dead, default=0)
        if not latest:
            raise InvalidRequest(f"tenant {tenant!r} has no key yet: its first is made when it is first archived")
        if latest not in dead:
            raise InvalidRequest(f"tenant {tenant!r} still has a live key ({tenant}/{latest}); shred it first")
        return self._create(tenant, latest + 1)

    def _path(self, key_id: str, suffix: str) -> Path:
        tenant, _, generation = key_id.partition("/")
        if not generation.isdigit() or not tenant or tenant in (".", "..") or "/" in generation:
            raise KeyUnavailable(f"{key_id!r} is not a key id of {self._label}", tenant_id=tenant or None)
        return self._dir(tenant) / f"{int(generation)}.{suffix}"

    def state(self, key_id: str) -> KeyState:
        if self._path(key_id, "shredded").exists():
            return "shredded"
        return "live" if self._path(key_id, "key").exists() else "missing"

    def secret(self, key_id: str) -> bytes:
        """Tenant key ``key_id``, unwrapped; :class:`KeyUnavailable` saying why not."""
        tenant = key_tenant(key_id)
        if self.state(key_id) == "shredded":
            raise KeyUnavailable(
                f"the key of tenant {tenant!r} ({key_id}) was shredded: its encrypted columns cannot be read by anyone",
                tenant_id=tenant,
                shredded=True,
            )
        path = self._path(key_id, "key")
        try:
            body = self._read_json(path, tenant)
        except FileNotFoundError:
            raise KeyUnavailable(
                f"the key of tenant {tenant!r} ({key_id}) is missing from {self._label} (not shredded: no tombstone)",
                tenant_id=tenant,
            ) from None
        if body.get("key_id") != key_id:
            raise KeyUnavailable(
                f"{self._label}: the file of key {key_id} holds key {body.get('key_id')!r} "
                "(another tenant's key file?)",
                tenant_id=tenant,
            )
        sealer = self.sealer(create=False)
        if sealer is None:
            raise KeyUnavailable(f"{self._label}: keyring.json is missing", tenant_id=tenant)
        if body.get("master") != sealer.id:
            raise KeyUnavailable(
                f"{self._label}: key {key_id} is wrapped by another master than the keyring's "
                "(an interrupted rotation? run coldtier keys rotate again)",
                tenant_id=tenant,
            )
        try:
            key = sealer.open(unb64(body.get("wrapped")), key_id.encode())
        except KeyUnavailable as exc:
            exc.tenant_id = tenant
            raise
        except (ValueError, binascii.Error):
            raise KeyUnavailable(
                f"{self._label}: key {key_id} does not unwrap (corrupted, or not this tenant's key)",
                tenant_id=tenant,
            ) from None
        if len(key) != KEY_BYTES:
            raise KeyUnavailable(f"{self._label}: key {key_id} is corrupted", tenant_id=tenant)
        return key

    def shred(self, tenant: str) -> tuple[str, ...]:
        """Tombstone, then remove, every key of ``tenant``; the directory is fsynced after each step."""
        live, dead = self._generations(tenant)
        when = datetime.now(UTC).isoformat(timespec="seconds")
        for generation in sorted(live):
            key_id = f"{tenant}/{generation}"
            if generation not in dead:
                create_file(self._path(key_id, "shredded"), _dump({"format": _FORMAT, "key_id": key_id, "at": when}))
            path = self._path(key_id, "key")
            # Overwrite before unlinking: a hard link or an open file descriptor
            # elsewhere keeps the inode, and its blocks then hold nothing of the key.
            with open(path, "r+b") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(0)
                f.write(b"\0" * size)
                f.flush()
                os.fsync(f.fileno())
            path.unlink()
            fsync_dir(path.parent)
        return tuple(f"{tenant}/{g}" for g in sorted(live))

    def tenants(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def rotate(self, to: Master) -> int:
        """Rewrap every live tenant key under ``to``; the keyring's master changes last.

        ``keyring.next.json`` records the new master first, so an interrupted
        rotation run again with the same two masters finishes the job.
        """
        old = self.sealer(create=False)
        if old is None:
            raise InvalidRequest(f"{self._label} holds no keys yet: nothing to rotate")
        pending = self.root / "keyring.next.json"
        try:
            params = self._read_json(pending)["master"]
            if params.get("kind") != to.kind:
                raise InvalidRequest(f"{pending.name} records a {params.get('kind')} rotation, not {to.kind}")
            new, _ = to.bind(params, self._label)
        except FileNotFoundError:
            new, params = to.bind(None, self._label)
            if not create_file(pending, _dump({"format": _FORMAT, "master": params})):
                raise InvalidRequest(f"{self._label}: another rotation is under way") from None
        if new.id == old.id:
            pending.unlink()
            raise InvalidRequest(f"{self._label}: the new master is the one the keyring already has")
        count = 0
        for tenant in self.tenants():
            live, _ = self._generations(tenant)
            for generation in sorted(live):
                key_id = f"{tenant}/{generation}"
                path = self._path(key_id, "key")
                body = self._read_json(path, tenant)
                if body.get("master") == new.id:
                    continue
                key = self.secret(key_id)
                body.update(master=new.id, wrapped=b64(new.seal(key, key_id.encode())))
                replace_file(path, _dump(body))
                count += 1
        os.replace(pending, self.root / "keyring.json")
        fsync_dir(self.root)
        with self._lock:
            self._sealer = new
        return count


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, indent=1).encode() + b"\n"


# ---------------------------------------------------------------------------
# Providers over a keyring


class KeyringProvider(KeyProvider):
    """A :class:`KeyProvider` whose tenant keys live in a :class:`Keyring`; wraps with AES-GCM."""

    def __init__(self, keyring: Keyring, label: str) -> None:
        self._keyring = keyring
        self._label = label
        self._source: tuple[str, dict[str, Any]] | None = None  # (url, options) of from_url, to pickle

    def __reduce__(self) -> tuple[Any, ...]:
        # A worker process (DESIGN.md §11) rebuilds the provider from its URL and options:
        # locks, unwrapped masters and SDK clients are not sent.
        if self._source is None:
            raise TypeError(f"{type(self).__name__} built without from_url cannot be pickled")
        return (_rebuild, (type(self), *self._source))

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    def description(self) -> str:
        return self._label

    def current(self, tenant_id: str, *, create: bool = True) -> str:
        return self._keyring.current(tenant_id, create=create)

    def wrap(self, key_id: str, data_key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self._keyring.secret(key_id)).encrypt(nonce, data_key, key_id.encode())

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        key = self._keyring.secret(key_id)
        try:
            return AESGCM(key).decrypt(wrapped[:12], wrapped[12:], key_id.encode())
        except InvalidTag:
            raise KeyUnavailable(
                f"the key of tenant {key_tenant(key_id)!r} ({key_id}) in {self._label} does not open this object's "
                "data keys (the key file was replaced?)",
                tenant_id=key_tenant(key_id),
            ) from None

    def state(self, key_id: str) -> KeyState:
        return self._keyring.state(key_id)

    def shred(self, tenant_id: str) -> Shredded:
        return Shredded(tenant_id, self._keyring.shred(tenant_id), "now (the wrapped key is destroyed)")

    def new_key(self, tenant_id: str) -> str:
        return self._keyring.new_key(tenant_id)

    def rotate(self, to: KeyProvider) -> int:
        if not isinstance(to, KeyringProvider) or to.keyring.root.resolve() != self._keyring.root.resolve():
            raise InvalidRequest("rotation needs a second key provider URL on the same keyring path (its new master)")
        return self._keyring.rotate(to.keyring._master)


def keyring_path(url: str) -> Path:
    """The local directory of a ``scheme:///path`` URL."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise InvalidRequest(f"{parts.scheme}:// keyring URL names a host; use {parts.scheme}:///absolute/path")
    path = unquote(parts.path)
    if not path or path == "/":
        raise InvalidRequest(f"{parts.scheme}:// keyring URL has no path: {parts.scheme}:///path/to/keyring")
    return Path(path)


def env_secret(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise KeyUnavailable(f"the {what} environment variable {name} is not set")
    return value


FILE_OPTIONS = {
    "passphrase": OptionSpec(str, secret=True, doc="wrap the keyring with a key derived from this passphrase"),
    "passphrase_env": OptionSpec(str, doc="environment variable holding the keyring passphrase"),
    "master_key": OptionSpec(object, secret=True, doc="wrap the keyring with this 32-byte key (hex/base64)"),
    "master_key_env": OptionSpec(str, doc="environment variable holding the 32-byte master key"),
}


class FileKeys(KeyringProvider):
    """``file:///path/keyring[?passphrase_env=NAME | ?master_key_env=NAME]``: the embedded default."""

    scheme = "file"

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> FileKeys:
        location = parse_url(url, FILE_OPTIONS, options)
        root = keyring_path(url)
        given = {k: v for k, v in location.options.items() if v is not None}
        if len(given) > 1:
            raise InvalidRequest(f"give one of {', '.join(FILE_OPTIONS)}, not {', '.join(sorted(given))}")
        master: Master = NoMaster()
        if "passphrase" in given:
            master = Passphrase(given["passphrase"])
        elif "passphrase_env" in given:
            master = Passphrase(env_secret(given["passphrase_env"], "passphrase"))
        elif "master_key" in given:
            master = MasterKey(given["master_key"])
        elif "master_key_env" in given:
            master = MasterKey(env_secret(given["master_key_env"], "master key"))
        label = root.as_uri() if root.is_absolute() else f"file://{root}"
        provider = cls(Keyring(root, master, label), label)
        provider._source = (url, dict(options))
        return provider


def _rebuild(cls: type[KeyringProvider], url: str, options: dict[str, Any]) -> KeyProvider:
    return cls.from_url(url, **options)
