"""AWS KMS as the keyring's master: ``aws-kms:///path/keyring?key_id=...&region=...``.

Envelope encryption: each tenant's data key (32 random bytes) is wrapped by
one KMS key (``Encrypt`` with the key id as encryption context) and kept,
wrapped, in the keyring directory; an object's Parquet data keys are wrapped
by the tenant's key.  Shredding destroys the tenant's wrapped key at once;
rotation re-wraps every tenant key under another KMS key.  A disabled,
denied or missing KMS key is :class:`~coldtier.KeyUnavailable` (not "shredded").
"""

from __future__ import annotations

from typing import Any

from .._errors import InvalidRequest, KeyUnavailable
from .._options import OptionSpec, parse_url
from ._masters import Master, Sealer
from .keyring import Keyring, KeyringProvider, keyring_path

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:  # pragma: no cover - the registry names the extra
    raise ImportError(str(exc), name="boto3") from exc

__all__ = ["AwsKmsKeys", "KmsMaster"]

OPTIONS = {
    "key_id": OptionSpec(str, doc="the KMS key (id, ARN or alias/...) that wraps the tenant keys"),
    "region": OptionSpec(str, doc="AWS region of the KMS key"),
    "endpoint_url": OptionSpec(str, doc="KMS endpoint (tests, VPC endpoints)"),
    "profile": OptionSpec(str, doc="AWS profile from the shared config"),
    "key": OptionSpec(str, secret=True, doc="AWS access key id (else the environment's chain)"),
    "secret": OptionSpec(str, secret=True, doc="AWS secret access key"),
    "token": OptionSpec(str, secret=True, doc="AWS session token"),
    "timeout": OptionSpec(int, default=30, doc="seconds one KMS request may take"),
}


class _KmsSealer(Sealer):
    def __init__(self, client: Any, key_id: str) -> None:
        self._client = client
        self._key_id = key_id
        self.id = f"aws-kms:{key_id}"

    def _call(self, action: str, **kwargs: Any) -> bytes:
        try:
            reply = getattr(self._client, action)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            if action == "decrypt" and code == "InvalidCiphertextException":
                raise ValueError(code) from None
            raise KeyUnavailable(f"KMS key {self._key_id} refused {action}: {code}") from None
        except BotoCoreError as exc:
            raise KeyUnavailable(f"KMS key {self._key_id} could not be used ({type(exc).__name__})") from None
        return bytes(reply["CiphertextBlob" if action == "encrypt" else "Plaintext"])

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        context = {"coldtier-key-id": aad.decode()}
        return self._call("encrypt", KeyId=self._key_id, Plaintext=plain, EncryptionContext=context)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        context = {"coldtier-key-id": aad.decode()}
        return self._call("decrypt", KeyId=self._key_id, CiphertextBlob=sealed, EncryptionContext=context)

    def __repr__(self) -> str:
        return f"<sealer {self.id}>"


class KmsMaster(Master):
    """Tenant keys wrapped by one KMS key."""

    kind = "aws-kms"

    def __init__(self, client: Any, key_id: str) -> None:
        self._client = client
        self._key_id = key_id

    def bind(self, params: dict[str, Any] | None, where: str) -> tuple[Sealer, dict[str, Any]]:
        sealer = _KmsSealer(self._client, self._key_id)
        if params is None:
            return sealer, {"kind": self.kind, "id": sealer.id}
        if params.get("id") != sealer.id:
            raise KeyUnavailable(f"{where}: the keyring is wrapped by {params.get('id')}, not {sealer.id}")
        return sealer, params


class AwsKmsKeys(KeyringProvider):
    """A keyring directory whose tenant keys are wrapped by an AWS KMS key."""

    scheme = "aws-kms"

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> AwsKmsKeys:
        given = parse_url(url, OPTIONS, options).options
        if not given.get("key_id"):
            raise InvalidRequest("aws-kms:// needs key_id (the KMS key that wraps the tenant keys)")
        root = keyring_path(url)
        session = boto3.session.Session(
            profile_name=given.get("profile"),
            aws_access_key_id=given.get("key"),
            aws_secret_access_key=given.get("secret"),
            aws_session_token=given.get("token"),
        )
        timeout = given.get("timeout", 30)
        client = session.client(
            "kms",
            region_name=given.get("region"),
            endpoint_url=given.get("endpoint_url"),
            config=Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"mode": "standard", "total_max_attempts": 3},
            ),
        )
        label = f"aws-kms://{root.as_posix()}?key_id={given['key_id']}"
        provider = cls(Keyring(root, KmsMaster(client, given["key_id"]), label), label)
        provider._source = (url, dict(options))
        return provider
