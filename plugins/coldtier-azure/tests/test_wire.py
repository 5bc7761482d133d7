"""Faults at the wire through coldtier's fault proxy, and the requests each archive call makes.

Each test pins the exact request sequence a fault leads to, then checks what
Azurite holds afterwards through the SDK (never through coldtier).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import coldtier
import pytest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
from coldtier import ArchiveReadError, ArchiveWriteError, PreconditionUnsupported
from coldtier.testing import FaultProxy, Rule, make_events, window_of

from _azurite import ACCOUNT, KEY, PREFIX, Azurite, SDKBackdoor

BLOB = r"^/devstoreaccount1/[^/?]+/"  # a blob's path (not the container's)
BUSY = b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>busy</Message></Error>'


@pytest.fixture
def proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    with FaultProxy(azurite.url) as running:
        yield running


@pytest.fixture
def through(azurite: Azurite, container: str, proxy: FaultProxy) -> Callable[..., coldtier.Archive]:
    return lambda **options: azurite.open(container, endpoint=f"{proxy.url}/devstoreaccount1", **options)


@pytest.fixture
def stored(azurite: Azurite, container: str) -> SDKBackdoor:
    return SDKBackdoor(azurite, container)


def _objects(proxy: FaultProxy, method: str | None = None) -> list[Any]:
    """The requests for objects: not the ledger's receipt (one more Put Blob per call, DESIGN.md §10)."""
    return [r for r in proxy.requests(method) if not re.search(r"_coldtier(~|%7E)ledger", r.target)]


def _calls(proxy: FaultProxy) -> list[tuple[str, int | None]]:
    return [(r.method, r.status) for r in _objects(proxy)]


def _receipts(proxy: FaultProxy) -> list[tuple[str, int | None]]:
    return [(r.method, r.status) for r in proxy.requests() if r not in _objects(proxy)]


def test_requests_per_archive_call_new_repeat_confirm(
    through: Callable[..., coldtier.Archive], proxy: FaultProxy, stored: SDKBackdoor
) -> None:
    events = make_events("acme", 100)
    archive = through()
    receipt = archive.archive("acme", *window_of(events), events)
    assert _calls(proxy) == [("PUT", 201)]  # new: one Put Blob
    assert _receipts(proxy) == [("PUT", 201)]  # and the ledger's receipt
    put = proxy.requests()[0]
    data = stored.get(receipt.keys[0])
    assert put.headers["If-None-Match"] == "*"
    assert put.headers["Content-MD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert put.headers["x-ms-meta-coldtier_sha256"] == hashlib.sha256(data).hexdigest()
    proxy.clear()
    assert not archive.archive("acme", *window_of(events), events).created
    assert _calls(proxy) == [("PUT", 409), ("HEAD", 200)]  # repeat: refused, confirmed by properties
    # The same bytes written by another tool (no coldtier metadata): confirmed by a download.
    stored.client.delete_blob(stored.prefix + receipt.keys[0])
    stored.put(receipt.keys[0], data)
    proxy.clear()
    assert not archive.archive("acme", *window_of(events), events).created
    assert _calls(proxy) == [("PUT", 409), ("HEAD", 200), ("GET", 206)]
    proxy.clear()
    assert archive.read("acme").num_rows == 100
    assert _calls(proxy) == [("GET", 200), ("GET", 200), ("GET", 206)]  # 2 listings, 1 blob


def test_lost_response_after_a_successful_put_is_one_object_not_created(
    through: Callable[..., coldtier.Archive], proxy: FaultProxy, stored: SDKBackdoor
) -> None:
    proxy.add(Rule(action="drop", method="PUT", path=BLOB, times=1))
    events = make_events("acme", 100)
    archive = through()
    receipt = archive.archive("acme", *window_of(events), events)
    assert _calls(proxy) == [("PUT", 201), ("PUT", 409), ("HEAD", 200)]
    assert not receipt.created  # this call cannot know the first write was its own
    assert stored.objects() == list(receipt.keys)
    assert archive.read("acme").num_rows == 100 and archive.verify().ok


@pytest.mark.parametrize("status", [503, 500])
def test_burst_of_server_busy_is_retried(
    through: Callable[..., coldtier.Archive], proxy: FaultProxy, stored: SDKBackdoor, status: int
) -> None:
    proxy.add(Rule(action="status", method="PUT", path=BLOB, status=status, body=BUSY, times=2))
    events = make_events("acme", 100)
    receipt = through().archive("acme", *window_of(events), events)
    assert _calls(proxy) == [("PUT", status), ("PUT", status), ("PUT", 201)] and receipt.created
    assert stored.objects() == list(receipt.keys)


def test_reset_mid_body_is_retried_and_leaves_one_whole_object(
    through: Callable[..., coldtier.Archive], proxy: FaultProxy, stored: SDKBackdoor
) -> None:
    proxy.add(Rule(action="reset", method="PUT", path=BLOB, times=1))
    events = make_events("acme", 2000)
    archive = through()
    receipt = archive.archive("acme", *window_of(events), events)
    assert receipt.created and [m for m, _ in _calls(proxy)] == ["PUT", "PUT"]
    assert stored.objects() == list(receipt.keys) and archive.verify().ok


def test_server_busy_forever_fails_in_bounded_time_storing_nothing(
    through: Callable[..., coldtier.Archive], proxy: FaultProxy, stored: SDKBackdoor
) -> None:
    proxy.add(Rule(action="status", method="PUT", path=BLOB, status=503, body=BUSY, times=None))
    events = make_events("acme", 100)
    began = time.monotonic()
    with pytest.raises(ArchiveWriteError, match="keep the originals"):
        through(max_attempts=3).archive("acme", *window_of(events), events)
    assert time.monotonic() - began < 10
    assert _calls(proxy) == [("PUT", 503)] * 3 and stored.objects() == []


@pytest.mark.parametrize(("status", "code"), [(403, b"AuthorizationFailure"), (409, b"LeaseIdMissing")])
def test_other_4xx_is_not_retried_and_never_taken_for_exists(
    through: Callable[..., coldtier.Archive], proxy: FaultProxy, stored: SDKBackdoor, status: int, code: bytes
) -> None:
    body = b"<Error><Code>" + code + b"</Code><Message>no</Message></Error>"
    proxy.add(Rule(action="status", method="PUT", path=BLOB, status=status, body=body, times=None))
    events = make_events("acme", 10)
    with pytest.raises(ArchiveWriteError, match=code.decode()):
        through().archive("acme", *window_of(events), events)
    assert _calls(proxy) == [("PUT", status)] and stored.objects() == []


def test_probe_catches_a_store_that_ignores_if_none_match(
    azurite: Azurite, container: str, proxy: FaultProxy, stored: SDKBackdoor
) -> None:
    # A SAS signs no headers (a shared key signs If-None-Match), so the proxy can strip it.
    sas = generate_account_sas(
        ACCOUNT,
        KEY,
        resource_types=ResourceTypes(object=True, container=True),
        permission=AccountSasPermissions(read=True, write=True, delete=True, list=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    url = f"az://{container}/{PREFIX}"
    through = coldtier.open_archive(url, account_url=f"{proxy.url}/{ACCOUNT}", credential=sas)
    through.probe()
    assert [m for m, _ in _calls(proxy)] == [
        "PUT",
        "PUT",
        "GET",
        "DELETE",
    ]  # canary, refused, read back, removed
    proxy.add(Rule(action="pass", method="PUT", strip_header="If-None-Match", times=None))
    with pytest.raises(PreconditionUnsupported, match="second create"):
        through.probe()
    assert stored.objects() == []


def test_tier_and_encryption_scope_are_sent_with_the_put(
    through: Callable[..., coldtier.Archive], proxy: FaultProxy
) -> None:
    # Azurite accepts an encryption scope but does not keep it: the request is what can be checked.
    events = make_events("acme", 10)
    through(access_tier="Cold", encryption_scope="tenant-keys").archive("acme", *window_of(events), events)
    (put,) = _objects(proxy, "PUT")
    assert put.headers["x-ms-access-tier"] == "Cold"
    assert put.headers["x-ms-encryption-scope"] == "tenant-keys"


def test_read_faults_are_retried_within_the_budget(
    through: Callable[..., coldtier.Archive], proxy: FaultProxy
) -> None:
    events = make_events("acme", 100)
    archive = through(max_attempts=3)
    archive.archive("acme", *window_of(events), events)
    proxy.add(Rule(action="status", method="GET", path=BLOB, status=503, body=BUSY, times=2))
    assert archive.read("acme").num_rows == 100
    assert [s for m, s in _calls(proxy) if m == "GET"][-3:] == [503, 503, 206]
    proxy.clear()
    proxy.add(Rule(action="status", method="GET", path=BLOB, status=503, body=BUSY, times=None))
    began = time.monotonic()
    with pytest.raises(ArchiveReadError, match="ServerBusy"):
        archive.read("acme")
    assert time.monotonic() - began < 10
    assert len([r for r in proxy.requests("GET") if r.status == 503]) == 3  # the SDK's own retries are off
