"""The option specs of the built-in remote backends, in a module that imports no cloud SDK.

``S3Store.OPTIONS``, ``R2Store.OPTIONS`` and ``GCSStore.OPTIONS`` *are* these
mappings; they live here so the options reference (``docs/options.md``, the
docstring of :func:`coldtier.open_archive`) can be built by ``import
coldtier`` without s3fs, botocore or gcsfs (or asyncio).  Each ``doc`` says what the option
does and, where ``default`` is ``None``, what happens when it is not given.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._options import OptionSpec

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_TIMEOUT",
    "GCS_DEFAULT_OBJECT_BYTES",
    "GCS_OPTIONS",
    "R2_OPTIONS",
    "S3_OPTIONS",
]

#: ``timeout`` and ``max_attempts`` of S3, R2 and GCS (see :mod:`coldtier.backends._deadline`).
DEFAULT_TIMEOUT = 15
DEFAULT_ATTEMPTS = 3

_TIMEOUT = OptionSpec(
    int,
    default=DEFAULT_TIMEOUT,
    doc="seconds to wait for a connection, and for each read of an answer, per attempt; "
    "no request outlives max_attempts * (2 * timeout + bytes sent at 1 MiB/s) + backoff",
)
_ATTEMPTS = OptionSpec(
    int,
    default=DEFAULT_ATTEMPTS,
    doc="tries per request, the first included, with jittered exponential backoff between them",
)

_S3_CLASSES = (
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
    "EXPRESS_ONEZONE",
)

#: How to reach an S3 API and as whom: S3 and R2 alike.
_CONNECTION: Mapping[str, OptionSpec] = {
    "endpoint_url": OptionSpec(
        str, doc="S3 API endpoint of an S3-compatible store or an emulator; unset: Amazon S3's"
    ),
    "profile": OptionSpec(str, doc="AWS shared-config profile; unset: AWS_PROFILE, else the default profile"),
    "key": OptionSpec(
        str, secret=True, doc="access key id; unset: the AWS credential chain (environment, profile, role)"
    ),
    "secret": OptionSpec(str, secret=True, doc="secret access key, with key"),
    "token": OptionSpec(str, secret=True, doc="session token of temporary credentials, with key and secret"),
    "max_attempts": _ATTEMPTS,
    "timeout": _TIMEOUT,
}

S3_OPTIONS: Mapping[str, OptionSpec] = {
    **_CONNECTION,
    "region": OptionSpec(
        str, doc="AWS region of the bucket; unset: AWS_REGION / AWS_DEFAULT_REGION, else the profile's"
    ),
    "storage_class": OptionSpec(
        str, choices=_S3_CLASSES, default="STANDARD", doc="storage class of new objects"
    ),
    "sse": OptionSpec(
        str,
        choices=("AES256", "aws:kms"),
        doc="server-side encryption of new objects; unset: the bucket's default encryption",
    ),
    "kms_key_id": OptionSpec(str, doc="KMS key for sse=aws:kms; unset: the AWS managed key"),
    "object_lock_mode": OptionSpec(
        str,
        choices=("GOVERNANCE", "COMPLIANCE"),
        doc="Object Lock mode of every object written, with object_lock_days (the bucket needs Object "
        "Lock enabled); unset: no lock of coldtier's (a bucket default retention still applies)",
    ),
    "object_lock_days": OptionSpec(
        int, doc="days each object stays locked after it is written, with object_lock_mode"
    ),
}

_NO_R2 = "refused with the reason: R2 has no {what}"

R2_OPTIONS: Mapping[str, OptionSpec] = {
    **_CONNECTION,
    "endpoint_url": OptionSpec(
        str, doc="S3 API endpoint; unset: https://<account_id>[.<jurisdiction>].r2.cloudflarestorage.com"
    ),
    "account_id": OptionSpec(
        str, doc="Cloudflare account id, which gives the endpoint; needed unless endpoint_url is given"
    ),
    "jurisdiction": OptionSpec(
        str, choices=("eu", "fedramp"), doc="jurisdiction of the bucket; unset: none (global)"
    ),
    "storage_class": OptionSpec(
        str,
        choices=("STANDARD", "STANDARD_IA"),
        doc="storage class of new objects; unset: the bucket's default",
    ),
    # Known only to be refused with a reason, not as unknown options.
    "sse": OptionSpec(
        str, choices=("AES256", "aws:kms"), doc=_NO_R2.format(what="sse option (it encrypts every object)")
    ),
    "kms_key_id": OptionSpec(str, doc=_NO_R2.format(what="SSE-KMS")),
    "object_lock_mode": OptionSpec(
        str,
        choices=("GOVERNANCE", "COMPLIANCE"),
        doc=_NO_R2.format(what="Object Lock (use bucket lock rules)"),
    ),
    "object_lock_days": OptionSpec(int, doc=_NO_R2.format(what="Object Lock (use bucket lock rules)")),
}

#: Each GCS object is one request, re-sent whole on failure: keep it small enough.
GCS_DEFAULT_OBJECT_BYTES = 32 * 2**20

GCS_OPTIONS: Mapping[str, OptionSpec] = {
    "project": OptionSpec(str, doc="Google Cloud project; unset: the credentials' project"),
    "endpoint_url": OptionSpec(
        str,
        doc="JSON API endpoint (an emulator; http:// is used anonymously); unset: STORAGE_EMULATOR_HOST, "
        "else Google's",
    ),
    "storage_class": OptionSpec(
        str,
        choices=("STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"),
        doc="storage class of new objects; unset: the bucket's default",
    ),
    "kms_key_name": OptionSpec(str, doc="Cloud KMS key for new objects; unset: the bucket's default key"),
    "token": OptionSpec(
        object,
        secret=True,
        doc="credentials: anything gcsfs takes as token= (a service-account file, google.auth credentials); "
        "unset: Application Default Credentials",
    ),
    "timeout": _TIMEOUT,
    "max_attempts": _ATTEMPTS,
}
