"""Per-tenant encryption and crypto-shredding (DESIGN.md §9) on every backend, KMS on moto.

What is stored is checked through each backend's backdoor (never through the
code under test): object count, raw bytes, what a plain pyarrow reader sees.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import shutil
from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import coldtier
import coldtier.keys as keys_registry
from coldtier import ArchiveWriteError, IntegrityError, InvalidRequest, KeyUnavailable
from coldtier.keys import (
    KeyProvider,
    KeyState,
    Shredded,
    available_key_providers,
    key_tenant,
    open_key_provider,
)
from coldtier.testing import FaultProxy, Rule, make_events, window_of
from coldtier.testing._checks import written
from tests._moto import CREDENTIALS, BotoBackdoor, MotoRig, archive_url
from tests.test_gcs import GCSRig
from tests.test_local import LocalRig
from tests.test_memory import MemoryRig

MARKER = "SSN-078-05-1120-do-not-store-in-clear"


def secret_events(tenant: str, count: int, seed: int = 0, **when: Any) -> list[coldtier.Event]:
    """Events whose payload, metadata and entity id carry text that must never be stored in clear."""
    return [
        dataclasses.replace(
            e, payload={"ssn": f"{MARKER}-{i}"}, metadata={"who": f"{MARKER}-m"}, entity_id=f"patient-{MARKER}"
        )
        for i, e in enumerate(make_events(tenant, count, seed=seed, **when))
    ]


class EncryptionTests:
    """The encryption contract, on one backend (a rig supplies ``make_archive`` and ``backdoor``)."""

    @pytest.fixture
    def keyring(self, tmp_path: Path) -> str:
        return (tmp_path / "keyring").as_uri()

    def test_roundtrip_repeat_and_nothing_in_clear(self, make_archive: Any, backdoor: Any, keyring: str) -> None:
        events = secret_events("acme", 300)
        archive = make_archive(encryption=keyring)
        receipt = archive.archive("acme", *window_of(events), events)
        assert receipt.created
        again = archive.archive("acme", *window_of(events), events)
        # Encryption makes different bytes every time; the logical digest settles it to one object.
        assert (again.created, again.keys) == (False, receipt.keys)
        assert written(backdoor) == list(receipt.keys)
        plain = make_archive()
        plain.archive("acme", *window_of(events), events)  # the same events, unencrypted: already there
        assert written(backdoor) == list(receipt.keys)

        table = archive.read("acme")
        assert table.num_rows == 300 and table.column("payload")[7].as_py() == f'{{"ssn":"{MARKER}-7"}}'
        assert list(archive.events("acme")) == sorted(events, key=lambda e: (e.timestamp, str(e.id)))

        data = backdoor.get(receipt.keys[0])
        assert MARKER.encode() not in data and b"patient-" not in data
        # A plain pyarrow reader without keys: the plaintext columns and footer, not the personal ones.
        pf = pq.ParquetFile(pa.BufferReader(data))
        assert pf.metadata.metadata[b"coldtier.tenant_key"] == b"acme/1"
        ids = pf.read(columns=["event_id", "timestamp", "event_type", "version"]).column("event_id")
        assert sorted(ids.to_pylist()) == sorted(str(e.id) for e in events)
        with pytest.raises(OSError, match=r"[Dd]ecrypt"):
            pf.read(columns=["payload"])

        with pytest.MonkeyPatch.context() as env:  # a worker's copy (§11): credentials from its environment
            env.setenv("AWS_ACCESS_KEY_ID", "testing")
            env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            assert pickle.loads(pickle.dumps(archive)).read("acme").equals(table)
        report = plain.verify()  # without keys: bytes, footer, schema, plaintext columns
        assert report.ok and report.events == 300 and report.shredded == ()
        assert archive.verify().ok
        with pytest.raises(KeyUnavailable, match="encrypted") as info:
            plain.read("acme")
        assert info.value.tenant_id == "acme" and not info.value.shredded

    def test_shred(self, make_archive: Any, backdoor: Any, keyring: str) -> None:
        archive = make_archive(encryption=keyring)
        acme, beta = secret_events("acme", 50), secret_events("beta", 20, seed=1)
        kept = archive.archive("acme", *window_of(acme), acme)
        archive.archive("beta", *window_of(beta), beta)
        stored = {k: backdoor.get(k) for k in backdoor.list_keys()}

        shredded = archive.shred("acme")
        assert shredded.key_ids == ("acme/1",)
        for attempt in (lambda: archive.read("acme"), lambda: list(archive.events("acme"))):
            with pytest.raises(KeyUnavailable, match=r"tenant 'acme'.*shredded") as info:
                attempt()
            assert info.value.shredded and info.value.tenant_id == "acme"
        # A fresh process (a new archive object) cannot read it either.
        with pytest.raises(KeyUnavailable, match="shredded"):
            make_archive(encryption=keyring).read("acme")
        assert archive.read("beta").num_rows == 20  # other tenants untouched

        report = archive.verify()
        assert report.ok, report.problems  # shredded is not damage
        assert report.shredded == kept.keys and report.objects == 2 and report.events == 70
        assert {k: backdoor.get(k) for k in backdoor.list_keys()} == stored  # no object touched

        more = secret_events("acme", 5, seed=9, start=datetime(2025, 1, 1, tzinfo=UTC))
        with pytest.raises(KeyUnavailable, match="new key") as refused:
            archive.archive("acme", *window_of(more), more)
        assert refused.value.shredded
        assert written(backdoor) == sorted(k for k in stored if not k.startswith("_coldtier~"))
        assert archive.new_key("acme") == "acme/2"
        with pytest.raises(InvalidRequest, match="live key"):
            archive.new_key("acme")
        with pytest.raises(ArchiveWriteError, match="shredded key acme/1"):  # same events, same name
            archive.archive("acme", *window_of(acme), acme)
        new = archive.archive("acme", *window_of(more), more)
        assert archive.read("acme", *window_of(more)).num_rows == 5
        assert archive.verify().shredded == kept.keys and new.keys[0] not in archive.verify().shredded

    def test_rotation_keeps_objects_readable(
        self, make_archive: Any, backdoor: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CT_OLD", "correct horse battery staple")
        monkeypatch.setenv("CT_NEW", "a new passphrase, rotated")
        ring = (tmp_path / "ring").as_uri()
        events = secret_events("acme", 40)
        archive = make_archive(encryption=f"{ring}?passphrase_env=CT_OLD")
        receipt = archive.archive("acme", *window_of(events), events)
        before = backdoor.get(receipt.keys[0])

        old = open_key_provider(f"{ring}?passphrase_env=CT_OLD")
        assert old.rotate(open_key_provider(f"{ring}?passphrase_env=CT_NEW")) == 1
        assert backdoor.get(receipt.keys[0]) == before  # no object rewritten
        assert make_archive(encryption=f"{ring}?passphrase_env=CT_NEW").read("acme").num_rows == 40
        with pytest.raises(KeyUnavailable, match="wrong passphrase") as info:
            make_archive(encryption=f"{ring}?passphrase_env=CT_OLD").read("acme")
        assert not info.value.shredded


class TestLocalEncryption(LocalRig, EncryptionTests):
    pass


class TestMemoryEncryption(MemoryRig, EncryptionTests):
    pass


class TestS3Encryption(MotoRig, EncryptionTests):
    pass


class TestGCSEncryption(GCSRig, EncryptionTests):
    pass


# -- AWS KMS on moto's server ------------------------------------------------------


@pytest.fixture
def kms(moto_url: str) -> Any:
    return boto3.client(
        "kms",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["key"],
        aws_secret_access_key=CREDENTIALS["secret"],
    )


def kms_url(path: Path, key_id: str, endpoint: str) -> str:
    return f"aws-kms://{path.as_posix()}?key_id={key_id}&region=us-east-1&endpoint_url={endpoint}"


#: What KMS answers for a disabled key (moto's KMS does not enforce a key's state, so the
#: answer is given at the HTTP level, in front of it).
DISABLED = Rule(
    action="status",
    method="POST",
    status=400,
    times=None,
    body=b'{"__type": "DisabledException", "message": "arn:aws:kms:us-east-1:1:key/x is disabled."}',
)


@pytest.fixture
def kms_proxy(moto_url: str) -> Any:
    with FaultProxy(moto_url) as proxy:
        yield proxy


def test_kms_envelope_rotation_denial_and_shred(
    kms: Any, kms_proxy: FaultProxy, moto_url: str, fresh_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    first = kms.create_key()["KeyMetadata"]["KeyId"]
    ring = tmp_path / "ring"

    def archive_with(key_id: str) -> coldtier.Archive:
        keys = open_key_provider(kms_url(ring, key_id, kms_proxy.url), **CREDENTIALS)
        return coldtier.open_archive(archive_url("s3", fresh_bucket, "p", moto_url), **CREDENTIALS, encryption=keys)

    archive = archive_with(first)
    events = secret_events("acme", 60)
    receipt = archive.archive("acme", *window_of(events), events)
    stored = BotoBackdoor(s3_client, fresh_bucket, "p")
    before = stored.get(receipt.keys[0])
    assert MARKER.encode() not in before
    assert f"aws-kms:{first}" in (ring / "acme" / "1.key").read_text()  # wrapped by the KMS key
    assert kms_proxy.requests("POST")  # KMS was asked

    second = kms.create_key()["KeyMetadata"]["KeyId"]
    old = open_key_provider(kms_url(ring, first, kms_proxy.url), **CREDENTIALS)
    assert old.rotate(open_key_provider(kms_url(ring, second, kms_proxy.url), **CREDENTIALS)) == 1
    assert stored.get(receipt.keys[0]) == before  # no object rewritten
    kms.schedule_key_deletion(KeyId=first, PendingWindowInDays=7)  # the old KMS key is no longer needed
    rotated = archive_with(second)
    assert rotated.read("acme").num_rows == 60

    kms_proxy.add(DISABLED)  # denied, not shredded
    with pytest.raises(KeyUnavailable, match="DisabledException") as info:
        rotated.read("acme")
    assert not info.value.shredded and info.value.tenant_id == "acme"
    kms_proxy.clear()

    shredded = rotated.shred("acme")
    assert shredded.key_ids == ("acme/1",) and "now" in str(shredded)
    with pytest.raises(KeyUnavailable, match="shredded"):
        rotated.read("acme")
    assert rotated.verify().shredded == receipt.keys


def test_kms_key_disabled_mid_archive_stores_nothing_partial(
    kms: Any, kms_proxy: FaultProxy, moto_url: str, fresh_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    """A four-part batch whose KMS key is disabled after the first part's keys: no partial object."""
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    keys = open_key_provider(kms_url(tmp_path / "ring", key, kms_proxy.url), **CREDENTIALS)
    archive = coldtier.open_archive(
        archive_url("s3", fresh_bucket, "p", moto_url), **CREDENTIALS, encryption=keys, object_events=50
    )
    keys.current("acme")  # the tenant's key exists (one Encrypt); each part then asks KMS once
    kms_proxy.clear()
    kms_proxy.add(Rule(action="pass", method="POST", times=1))
    kms_proxy.add(DISABLED)
    events = secret_events("acme", 200)
    with pytest.raises(ArchiveWriteError, match="DisabledException") as failed:
        archive.archive("acme", *window_of(events), events)
    assert isinstance(failed.value.__cause__, KeyUnavailable)
    stored = BotoBackdoor(s3_client, fresh_bucket, "p")
    for k in written(stored):  # what was stored is complete on its own (a retry completes the rest)
        assert pq.ParquetFile(pa.BufferReader(stored.get(k))).read(columns=["event_id"]).num_rows == 50
    assert len(written(stored)) <= 1
    kms_proxy.clear()
    retried = archive.archive("acme", *window_of(events), events)
    assert len(retried.keys) == 4 and written(stored) == sorted(retried.keys)
    assert archive.read("acme").num_rows == 200


def test_lost_response_on_s3_settles_to_one_object(
    moto_url: str, fresh_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    with FaultProxy(moto_url) as proxy:
        proxy.add(Rule(action="drop", method="PUT", times=1))
        archive = coldtier.open_archive(
            archive_url("s3", fresh_bucket, "p", proxy.url), **CREDENTIALS, encryption=(tmp_path / "k").as_uri()
        )
        events = secret_events("acme", 100)
        receipt = archive.archive("acme", *window_of(events), events)
        # the object (answer lost), its create refused and confirmed; then the ledger's receipt
        wire = [("PUT", 200), ("PUT", 412), ("HEAD", 200), ("PUT", 200)]
        assert [(r.method, r.status) for r in proxy.requests()] == wire
        assert archive.read("acme").num_rows == 100 and archive.verify().ok
    assert written(BotoBackdoor(s3_client, fresh_bucket, "p")) == list(receipt.keys)


# -- hostile keyrings and objects (local) ------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "archive").mkdir()
    return tmp_path / "archive", tmp_path / "keyring"


def _open(root: Path, ring: Path, query: str = "") -> coldtier.Archive:
    return coldtier.open_archive(str(root), encryption=ring.as_uri() + query)


def test_a_tenant_key_file_replaced_by_garbage(local: tuple[Path, Path]) -> None:
    root, ring = local
    events = secret_events("acme", 10)
    _open(root, ring).archive("acme", *window_of(events), events)
    (ring / "acme" / "1.key").write_bytes(b"\x00garbage\xff" * 5)
    with pytest.raises(KeyUnavailable, match="corrupted") as info:
        _open(root, ring).read("acme")
    assert not info.value.shredded and info.value.tenant_id == "acme"
    report = _open(root, ring).verify()
    assert not report.ok and "cannot be checked" in report.problems[0].message and report.shredded == ()


def test_another_tenants_key_file_does_not_open_the_object(local: tuple[Path, Path]) -> None:
    root, ring = local
    archive = _open(root, ring)
    for tenant in ("acme", "beta"):
        events = secret_events(tenant, 10)
        archive.archive(tenant, *window_of(events), events)
    shutil.copy(ring / "beta" / "1.key", ring / "acme" / "1.key")
    with pytest.raises(KeyUnavailable, match="another tenant"):
        _open(root, ring).read("acme")
    # Same bytes relabelled as acme's key: the unwrapping itself fails (AES-GCM).
    beta = ring / "beta" / "1.key"
    beta.write_text(beta.read_text().replace("beta/1", "acme/1"))
    shutil.copy(beta, ring / "acme" / "1.key")
    with pytest.raises(KeyUnavailable, match="does not open"):
        _open(root, ring).read("acme")


def test_an_object_under_another_tenants_name_is_refused(local: tuple[Path, Path]) -> None:
    root, ring = local
    archive = _open(root, ring)
    acme, beta = secret_events("acme", 10), secret_events("beta", 10, seed=2)
    key = archive.archive("acme", *window_of(acme), acme).keys[0]
    archive.archive("beta", *window_of(beta), beta)
    moved = root / key.replace("acme", "beta")
    moved.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / key, moved)
    with pytest.raises(IntegrityError, match="tenant 'acme'"):
        archive.read("beta")
    problems = [p.message for p in archive.verify("beta").problems]
    assert "is encrypted under tenant 'acme''s key, not 'beta''s" in problems


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda ring: (ring / "keyring.json").write_text("{not json"), "corrupted"),
        (lambda ring: (ring / "keyring.json").write_text('{"format": 1, "master": {"kind": "none"}}'), "wrapped by"),
    ],
)
def test_a_corrupted_keyring(
    local: tuple[Path, Path], damage: Any, match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, ring = local
    monkeypatch.setenv("CT_PASS", "s3cret passphrase")
    events = secret_events("acme", 10)
    _open(root, ring, "?passphrase_env=CT_PASS").archive("acme", *window_of(events), events)
    damage(ring)
    with pytest.raises(KeyUnavailable, match=match):
        _open(root, ring, "?passphrase_env=CT_PASS").read("acme")
    more = secret_events("acme", 3, seed=5)
    with pytest.raises(ArchiveWriteError, match="cannot encrypt"):
        _open(root, ring, "?passphrase_env=CT_PASS").archive("acme", *window_of(more), more)


def test_keyring_files_are_private_and_durable_and_secrets_stay_out(
    local: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    root, ring = local
    caplog.set_level(logging.DEBUG)
    master = os.urandom(32).hex()
    archive = coldtier.open_archive(str(root), encryption=open_key_provider(ring.as_uri(), master_key=master))
    events = secret_events("acme", 10)
    archive.archive("acme", *window_of(events), events)
    assert (ring / "acme" / "1.key").stat().st_mode & 0o777 == 0o600
    assert (ring / "keyring.json").stat().st_mode & 0o777 == 0o600
    archive.read("acme")
    with pytest.raises(KeyUnavailable) as wrong:
        wrong_key = open_key_provider(ring.as_uri(), master_key=os.urandom(32).hex())
        coldtier.open_archive(str(root), encryption=wrong_key).read("acme")
    text = " ".join([repr(archive), archive.description(), str(wrong.value), caplog.text, str(archive.verify())])
    assert master not in text and MARKER not in text
    assert master not in (ring / "keyring.json").read_text() + (ring / "acme" / "1.key").read_text()
    with pytest.raises(InvalidRequest, match="credential"):
        coldtier.open_archive(str(root), encryption=ring.as_uri() + "?master_key=" + master)


def test_mixed_archive_and_plaintext_objects_unchanged(local: tuple[Path, Path]) -> None:
    root, ring = local
    plain, sealed = secret_events("acme", 30, seed=1), secret_events("acme", 30, seed=2)
    plain = [dataclasses.replace(e, timestamp=e.timestamp.replace(year=2023)) for e in plain]
    first = coldtier.open_archive(str(root)).archive("acme", *window_of(plain), plain)
    data = (root / first.keys[0]).read_bytes()
    assert b"coldtier.tenant_key" not in data and MARKER.encode() in data  # unencrypted as before
    archive = _open(root, ring)
    archive.archive("acme", *window_of(sealed), sealed)
    assert archive.read("acme").num_rows == 60 and archive.verify().ok


def test_shred_without_encryption_and_pickled_errors(local: tuple[Path, Path]) -> None:
    root, _ = local
    with pytest.raises(InvalidRequest, match="without encryption"):
        coldtier.open_archive(str(root)).shred("acme")
    with pytest.raises(InvalidRequest, match="no key yet"):
        _open(root, local[1]).new_key("acme")
    error = pickle.loads(pickle.dumps(KeyUnavailable("gone", tenant_id="acme", shredded=True)))
    assert (str(error), error.tenant_id, error.shredded) == ("gone", "acme", True)
    with pytest.raises(InvalidRequest, match="key provider URL"):
        coldtier.open_archive(str(root), encryption="/not/a/url")
    with pytest.raises(coldtier.UnknownBackend, match="aws-kms://"):
        coldtier.open_archive(str(root), encryption="vault://x")


# -- the key provider seam ---------------------------------------------------------


class VaultKeys(KeyProvider):
    """A third-party provider (in memory, for the test): the seam is the public API only."""

    scheme = "vault"
    keys: ClassVar[dict[str, bytes]] = {}

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> VaultKeys:
        return cls()

    def description(self) -> str:
        return "vault://test"

    def current(self, tenant_id: str, *, create: bool = True) -> str:
        return self.keys.setdefault(f"{tenant_id}/v1", AESGCM.generate_key(256)) and f"{tenant_id}/v1"

    def wrap(self, key_id: str, data_key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.keys[key_id]).encrypt(nonce, data_key, None)

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        if key_id not in self.keys:
            raise KeyUnavailable(f"{key_id} was shredded", tenant_id=key_tenant(key_id), shredded=True)
        return AESGCM(self.keys[key_id]).decrypt(wrapped[:12], wrapped[12:], None)

    def state(self, key_id: str) -> KeyState:
        return "live" if key_id in self.keys else "shredded"

    def shred(self, tenant_id: str) -> Shredded:
        gone = tuple(k for k in self.keys if key_tenant(k) == tenant_id)
        for k in gone:
            del self.keys[k]
        return Shredded(tenant_id, gone, "now")

    def new_key(self, tenant_id: str) -> str:
        raise InvalidRequest("not in this test")


def test_key_providers_are_a_seam_whose_builtins_cannot_be_shadowed(local: tuple[Path, Path]) -> None:
    root, _ = local
    points = [
        EntryPoint(name="file", value="evil.module:Keys", group="coldtier.keys"),
        EntryPoint(name="vault", value="tests.test_encryption:VaultKeys", group="coldtier.keys"),
    ]
    with pytest.warns(RuntimeWarning, match="'file' is a built-in key provider"):
        keys_registry._reset_entry_points(points)
    try:
        known = available_key_providers()
        assert known["file"] == "coldtier.keys.keyring:FileKeys"
        assert known["vault"] == "tests.test_encryption:VaultKeys" and "aws-kms" in known
        archive = coldtier.open_archive(str(root), encryption="vault://test")
        events = secret_events("acme", 10)
        key = archive.archive("acme", *window_of(events), events).keys[0]
        assert MARKER.encode() not in (root / key).read_bytes()
        assert archive.read("acme").num_rows == 10
        archive.shred("acme")
        with pytest.raises(KeyUnavailable, match="shredded"):
            archive.read("acme")
        assert archive.verify().shredded == (key,)
    finally:
        keys_registry._reset_entry_points()


def test_a_shredded_object_is_still_checked(local: tuple[Path, Path]) -> None:
    root, ring = local
    archive = _open(root, ring)
    events = secret_events("acme", 40)
    key = archive.archive("acme", *window_of(events), events).keys[0]
    archive.shred("acme")
    path = root / key
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) // 2]))  # cut: not a readable Parquet file any more
    report = archive.verify()
    assert not report.ok and report.problems[0].key == key and "not readable Parquet" in report.problems[0].message
    digest = key.rsplit(".", 2)[1].encode()  # the name's 16 digits, also in the plaintext footer
    assert data.count(digest) == 1
    path.write_bytes(bytes(data).replace(digest, b"0" * 16))
    report = archive.verify()
    messages = [p.message for p in report.problems]
    assert report.shredded == (key,) and messages[0] == (
        f"footer digest 0000000000000000 does not match the digest {digest.decode()} in its name"
    )
    assert all("differs from receipt" in m for m in messages[1:])  # and the ledger saw it too
