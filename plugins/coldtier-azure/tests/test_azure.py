"""The Azure backend against Azurite: coldtier's shipped suites unchanged, options, secrets."""

from __future__ import annotations

import hashlib
import logging
import pickle
from typing import Any, ClassVar

import coldtier
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from coldtier import ArchiveNotFound, ArchiveReadError, ArchiveWriteError, InvalidRequest, MissingDependency
from coldtier.testing import (
    ArchiveTests,
    HostileInputTests,
    ModelTests,
    WireFaultTests,
    make_events,
    window_of,
)

from coldtier_azure import AzureStore

from _azurite import ACCOUNT, KEY, PREFIX, Azurite, SDKBackdoor


class AzuriteRig:
    backend_name = "azure"
    # How an object write looks on the wire: a Put Blob on the blob's path (WireFaultTests).
    write_method = "PUT"
    write_path = r"^/devstoreaccount1/[^/?]+/"
    budget_options: ClassVar[dict[str, Any]] = {"max_attempts": 3}
    write_attempts = 3

    @pytest.fixture
    def upstream(self, azurite: Azurite) -> str:
        return azurite.url

    @pytest.fixture
    def make_archive_through(self, azurite: Azurite, container: str):
        return lambda endpoint, **options: azurite.open(
            container, endpoint=f"{endpoint}/devstoreaccount1", **options
        )

    @pytest.fixture
    def make_archive(self, azurite: Azurite, container: str):
        return lambda **options: azurite.open(container, **options)

    @pytest.fixture
    def backdoor(self, azurite: Azurite, container: str) -> SDKBackdoor:
        return SDKBackdoor(azurite, container)


class TestAzure(AzuriteRig, ArchiveTests):
    pass


class TestAzureModel(AzuriteRig, ModelTests):
    pass


class TestAzureHostile(AzuriteRig, HostileInputTests):
    pass


class TestAzureWireFaults(AzuriteRig, WireFaultTests):
    pass


# -- what is stored ----------------------------------------------------------------


def test_blob_carries_digests_in_identifier_metadata(azurite: Azurite, container: str) -> None:
    events = make_events("acme", 20)
    archive = azurite.open(container)
    (key,) = archive.archive("acme", *window_of(events), events).keys
    backdoor = SDKBackdoor(azurite, container)
    data = backdoor.get(key)
    props = backdoor.properties(key)
    assert props.metadata == {
        "coldtier_sha256": hashlib.sha256(data).hexdigest(),
        "coldtier_digest": coldtier.logical_digest(pq.read_table(pa.BufferReader(data))),
    }
    assert bytes(props.content_settings.content_md5) == hashlib.md5(data).digest()
    assert archive.store.stat(key).sha256 == hashlib.sha256(data).hexdigest()  # type: ignore[attr-defined]


def test_access_tier_is_applied_but_not_to_the_probe_canary(azurite: Azurite, container: str) -> None:
    events = make_events("acme", 20)
    archive = azurite.open(container, access_tier="Cool")
    (key,) = archive.archive("acme", *window_of(events), events).keys
    assert SDKBackdoor(azurite, container).properties(key).blob_tier == "Cool"
    archive.probe()
    assert SDKBackdoor(azurite, container).objects() == [key]


def test_archive_tier_blobs_are_written_and_confirmed_but_not_readable(
    azurite: Azurite, container: str
) -> None:
    events = make_events("acme", 20)
    archive = azurite.open(container, access_tier="Archive")
    receipt = archive.archive("acme", *window_of(events), events)
    assert not archive.archive("acme", *window_of(events), events).created  # confirmed from properties
    assert SDKBackdoor(azurite, container).objects() == list(receipt.keys)
    with pytest.raises(ArchiveReadError, match="BlobArchived"):  # until rehydrated
        archive.read("acme")


def test_az_and_azure_schemes_are_the_same_backend(azurite: Azurite, container: str) -> None:
    events = make_events("acme", 20)
    az = azurite.open(container)
    azure = coldtier.open_archive(
        f"azure://{container}/{PREFIX}", account_url=azurite.endpoint, credential=KEY
    )
    assert type(az.store) is type(azure.store) is AzureStore  # type: ignore[attr-defined]
    assert az.description() == f"az://{container}/{PREFIX}"
    assert azure.description() == f"azure://{container}/{PREFIX}"
    receipt = az.archive("acme", *window_of(events), events)
    again = azure.archive("acme", *window_of(events), events)
    assert again.keys == receipt.keys and not again.created


def test_connection_string_from_the_environment(
    azurite: Azurite, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = f"AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint={azurite.endpoint};"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", conn)
    events = make_events("acme", 20)
    archive = coldtier.open_archive(f"az://{container}/{PREFIX}")
    receipt = archive.archive("acme", *window_of(events), events)
    assert SDKBackdoor(azurite, container).objects() == list(receipt.keys)
    assert KEY not in repr(archive) and KEY not in archive.description()


def test_archive_pickles(azurite: Azurite, container: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # As on a Dask worker (DESIGN.md §11): the credential is in each process's environment, never pickled.
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={azurite.endpoint};",
    )
    events = make_events("acme", 20)
    archive = coldtier.open_archive(f"az://{container}/{PREFIX}")
    archive.archive("acme", *window_of(events), events)
    pickled = pickle.dumps(archive)
    assert KEY.encode() not in pickled
    copy = pickle.loads(pickled)
    assert copy.read("acme").num_rows == 20 and copy.description() == archive.description()


def test_missing_container_is_not_found_not_empty(azurite: Azurite) -> None:
    archive = azurite.open("no-such-container")
    with pytest.raises(ArchiveNotFound, match="does not exist"):
        archive.tenants()
    with pytest.raises(ArchiveNotFound):
        archive.verify()
    events = make_events("acme", 5)
    with pytest.raises(ArchiveWriteError, match="does not exist"):
        archive.archive("acme", *window_of(events), events)


# -- options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("az://", {"account_name": "acct"}, "container"),
        ("az://Bad_Container/x", {"account_name": "acct"}, "container"),
        ("az://a--b/x", {"account_name": "acct"}, "container"),
        ("az://ctr/a//b", {"account_name": "acct"}, "segment"),
        ("az://ctr/x?access_tier=Glacier", {"account_name": "acct"}, "access_tier"),
        (
            "az://ctr/x?storage_class=Cool",
            {"account_name": "acct"},
            "valid options: access_tier, account_name",
        ),
        ("az://ctr/x?credential=secret-in-url", {}, "keyword"),
        ("az://ctr/x?connection_string=secret-in-url", {}, "keyword"),
        ("az://ctr/x", {}, "account_name"),
        ("az://ctr/x", {"account_name": "evil.example/x"}, "account_name"),
        ("az://ctr/x", {"account_url": "http://h/a?sig=secret-in-url"}, "SAS"),
        ("az://ctr/x", {"account_url": "http://a", "endpoint_url": "http://b"}, "different"),
        ("az://ctr/x", {"connection_string": "secret-in-url", "credential": "k"}, "connection_string"),
        ("az://ctr/x", {"connection_string": "AccountKey=secret-in-url;nonsense"}, "connection_string"),
        ("az://ctr/x?max_object_bytes=6000000000", {"account_name": "acct"}, "at most"),
    ],
)
def test_bad_urls_and_options_are_refused(
    url: str, options: dict[str, Any], match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    with pytest.raises(InvalidRequest, match=match) as info:
        coldtier.open_archive(url, **options)
    assert "secret-in-url" not in str(info.value)


def test_without_a_credential_default_azure_credential_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # Built offline: no request is made until the archive is used.
    archive = coldtier.open_archive("az://ctr/p?account_name=acct")
    assert archive.description() == "az://ctr/p"
    monkeypatch.setitem(__import__("sys").modules, "azure.identity", None)  # the extra not installed
    with pytest.raises(MissingDependency, match=r"coldtier-azure\[identity\]"):
        coldtier.open_archive("az://ctr/p?account_name=acct")


# -- secrets -----------------------------------------------------------------------


def test_a_refused_key_fails_clearly_and_never_leaks(
    azurite: Azurite, container: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="  # base64, but not the account's key
    archive = coldtier.open_archive(
        f"az://{container}/{PREFIX}", account_url=azurite.endpoint, credential=wrong
    )
    events = make_events("acme", 10)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ArchiveWriteError, match="access denied") as failed:
        archive.archive("acme", *window_of(events), events)
    texts = [repr(archive), archive.description()]
    error: BaseException | None = failed.value
    while error is not None:
        texts += [str(error), repr(error)]
        error = error.__cause__ or error.__context__
    assert not [t for t in texts if wrong in t]
    assert not [r for r in caplog.records if wrong in r.getMessage()]
    assert SDKBackdoor(azurite, container).objects() == []
