"""Faults on the read side, at the wire: every read is exact or raises, and verify names what it cannot read.

An archive of 6 objects of one tenant and month is written directly to the
emulator (moto for S3, fake-gcs-server for GCS); reads then go through
:class:`coldtier.testing.FaultProxy`, which pages every listing (2 entries a
page, so a listing is several requests) and injects, per scenario:

* 500 and 503 on an object GET and on a listing page, within the retry
  budget (twice) and past it (forever);
* a GET body cut mid-way with the connection reset, and a short body handed
  out as if whole (``Content-Length`` of the cut body);
* a listing page cut mid-body, a connection reset instead of a listing page;
* an object deleted (for real, through a backdoor) between the listing and
  its GET.

Each scenario runs ``read``, ``events`` and ``verify`` through the proxy.  A
read either returns exactly the archived events (each once) or raises
``ArchiveReadError``/``IntegrityError`` — never fewer events, never a partial
table; a fault that stays within the retry budget must not fail the read;
``verify`` either raises on a listing it cannot complete or reports the
object it cannot read, and is clean only when every object was read whole.
Between scenarios the archive is restored (a create-only re-archive of the
batch) and checked through the backdoor.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import pyarrow as pa
import pytest

import coldtier
from coldtier.testing import FaultProxy, Rule
from coldtier.testing._data import make_table
from tests._moto import CREDENTIALS, BotoBackdoor, archive_url
from tests._reliability import check_store, tally, timed

AREA = "read-side faults (fault proxy)"
ROWS = 600
OBJECT_EVENTS = 100  # 6 objects, 3 listing pages of 2
BOUND = 60.0  # seconds any one call may take


@dataclass
class ReadRig:
    """One store behind the proxy: how its listings and object GETs look on the wire, and a backdoor."""

    backend: str
    upstream: str
    open_through: Callable[[str], coldtier.Archive]
    direct: coldtier.Archive
    backdoor: Any
    delete: Callable[[str], None]
    list_path: str  # regex of a listing request of a month
    next_page: str  # regex of a listing request after the first page
    page_query: dict[str, str]
    get_path: Callable[[str], str]  # regex of the GET of one object (by key)


@pytest.fixture
def s3_rig(moto_url: str, s3_client: Any, fresh_bucket: str) -> ReadRig:
    prefix = "cold/tier"

    def open_through(endpoint: str) -> coldtier.Archive:
        return coldtier.open_archive(archive_url("s3", fresh_bucket, prefix, endpoint), **CREDENTIALS)

    return ReadRig(
        "s3",
        moto_url,
        open_through,
        coldtier.open_archive(
            archive_url("s3", fresh_bucket, prefix, moto_url), **CREDENTIALS, object_events=OBJECT_EVENTS
        ),
        BotoBackdoor(s3_client, fresh_bucket, prefix),
        lambda key: s3_client.delete_object(Bucket=fresh_bucket, Key=f"{prefix}/{key}"),
        r"list-type=2.*prefix=cold%2Ftier%2Facme%2F\d{4}-\d\d%2F",
        r"continuation-token=",
        {"max-keys": "2"},
        lambda key: rf"\.{key.rsplit('.', 2)[-2]}\.parquet$",
    )


@pytest.fixture
def gcs_rig(fake_gcs: Any, gcs_bucket: str) -> ReadRig:
    from tests._fakegcs import HTTPBackdoor

    prefix = "cold/tier"
    url = f"gs://{gcs_bucket}/{prefix}"

    def delete(key: str) -> None:
        name = urllib.parse.quote(f"{prefix}/{key}", safe="")
        fake_gcs.request("DELETE", f"/storage/v1/b/{gcs_bucket}/o/{name}")

    return ReadRig(
        "gcs",
        fake_gcs.url,
        lambda endpoint: coldtier.open_archive(url, endpoint_url=endpoint),
        coldtier.open_archive(url, endpoint_url=fake_gcs.url, object_events=OBJECT_EVENTS),
        HTTPBackdoor(fake_gcs, gcs_bucket, prefix),
        delete,
        r"/o\?.*prefix=cold(?:%2F|/)tier(?:%2F|/)acme(?:%2F|/)\d{4}-\d\d(?:%2F|/)",
        r"pageToken=",
        {"maxResults": "2"},
        lambda key: rf"{key.rsplit('.', 2)[-2]}\.parquet\?.*alt=media",
    )


@pytest.fixture(params=["s3", "gcs"])
def rig(request: pytest.FixtureRequest) -> ReadRig:
    fixture: ReadRig = request.getfixturevalue(f"{request.param}_rig")
    return fixture


#: (name, rule factory, what a read must do: "exact" | "raise" | "either", what verify must do:
#:  "clean" | "problem" (names the object) | "raise" | "either").
Scenario = tuple[str, Callable[[ReadRig, str], list[Rule]], str, str]


def _get(rig: ReadRig, key: str, **kw: Any) -> Rule:
    return Rule(method="GET", path=rig.get_path(key), **kw)


def _page(rig: ReadRig, **kw: Any) -> Rule:
    return Rule(
        method="GET", path=f"^(?=.*{rig.list_path})(?=.*{rig.next_page})", set_query=rig.page_query, **kw
    )


INJECTED_500 = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"


def _get_500_503(r: ReadRig, k: str) -> list[Rule]:
    return [
        _get(r, k, action="status", status=500, body=INJECTED_500, times=1),
        _get(r, k, action="status", status=503, times=1),
    ]


def _page_500_503(r: ReadRig, k: str) -> list[Rule]:
    return [
        _page(r, action="status", status=500, body=INJECTED_500, times=1),
        _page(r, action="status", status=503, times=1),
    ]


SCENARIOS: list[Scenario] = [
    ("GET 500 then 503", _get_500_503, "exact", "clean"),
    (
        "GET 503 forever",
        lambda r, k: [_get(r, k, action="status", status=503, times=None)],
        "raise",
        "problem",
    ),
    # S3 and GCS both fetch a cut body again (S3 since issue 17b: botocore retries requests, not bodies).
    ("GET body cut, reset once", lambda r, k: [_get(r, k, action="truncate", times=1)], "exact", "clean"),
    (
        "GET body cut, reset forever",
        lambda r, k: [_get(r, k, action="truncate", times=None)],
        "raise",
        "problem",
    ),
    (
        "GET short body passed as whole",
        lambda r, k: [_get(r, k, action="truncate", keep=0.6, relength=True, times=None)],
        "raise",
        "problem",
    ),
    ("list page 500 then 503", _page_500_503, "exact", "clean"),
    (
        "list page 503 forever",
        lambda r, k: [_page(r, action="status", status=503, times=None)],
        "raise",
        "raise",
    ),
    ("list page reset once", lambda r, k: [_page(r, action="reset", times=1)], "either", "either"),
    ("list page reset forever", lambda r, k: [_page(r, action="reset", times=None)], "raise", "raise"),
    ("list page cut mid-body once", lambda r, k: [_page(r, action="truncate", times=1)], "either", "either"),
    (
        "list page cut, passed as whole",
        lambda r, k: [_page(r, action="truncate", relength=True, times=None)],
        "raise",
        "raise",
    ),
]
#: Scenarios also run through ``events`` (the streaming read); the others through ``read`` and ``verify``.
STREAMED = {
    "GET 503 forever",
    "GET short body passed as whole",
    "list page 503 forever",
    "list page reset once",
}


def bounded(call: Callable[[], Any]) -> Any:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:  # handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), f"a read still running after {BOUND} s"
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.fixture
def stored(rig: ReadRig) -> Iterator[tuple[pa.Table, list[str]]]:
    table = make_table(ROWS, seed=23)
    ts = table.column("timestamp")
    window = ts[0].as_py().replace(tzinfo=UTC), ts[-1].as_py().replace(tzinfo=UTC)
    receipt = rig.direct.archive("acme", *window, table)
    assert len(receipt.keys) == ROWS // OBJECT_EVENTS
    yield table, sorted(receipt.keys)


def _window(table: pa.Table) -> tuple[Any, Any]:
    ts = table.column("timestamp")
    return ts[0].as_py().replace(tzinfo=UTC), ts[-1].as_py().replace(tzinfo=UTC)


class Count:
    def __init__(self) -> None:
        self.trials = self.faults = self.events = self.errors = self.lost = self.partial = 0


def _run(op: str, archive: coldtier.Archive, table: pa.Table) -> tuple[str, Any]:
    window = _window(table)
    try:
        if op == "read":
            return "ok", bounded(lambda: archive.read("acme", *window).column("event_id").to_pylist())
        if op == "events":
            return "ok", bounded(lambda: [str(e.id) for e in archive.events("acme", *window)])
        return "ok", bounded(lambda: archive.verify())
    except (coldtier.ArchiveReadError, coldtier.IntegrityError) as exc:
        return "raised", exc


def _judge(
    op: str, outcome: tuple[str, Any], want: str, want_verify: str, table: pa.Table, key: str, count: Count
) -> None:
    kind, value = outcome
    expected = sorted(table.column("event_id").to_pylist())
    count.trials += 1
    if op == "verify":
        if kind == "raised":
            assert want_verify in ("raise", "either"), f"verify raised {value!r}"
            assert isinstance(value, coldtier.ArchiveReadError), value
            count.errors += 1
            return
        problems = [p.key for p in value.problems]
        if want_verify == "problem" or (want_verify == "either" and problems):
            assert problems == [key], f"verify should report exactly {key}: {value.problems}"
            count.errors += 1
        else:
            assert want_verify in ("clean", "either"), f"verify was clean: {value}"
            assert problems == [] and value.objects == ROWS // OBJECT_EVENTS and value.events == ROWS, value
        count.events += value.events
        return
    if kind == "raised":
        assert want in ("raise", "either"), f"{op} raised though the fault was within the budget: {value!r}"
        count.errors += 1
        return
    assert want in ("exact", "either"), f"{op} returned {len(value)} events though it had to fail"
    missing = len(set(expected) - set(value))
    count.lost += missing
    count.partial += int(missing > 0)
    assert sorted(value) == expected, f"{op}: {len(value)} events ({len(set(value))} distinct), want {ROWS}"
    count.events += len(value)


def _restore(rig: ReadRig, table: pa.Table, keys: list[str]) -> None:
    receipt = rig.direct.archive("acme", *_window(table), table)
    assert sorted(receipt.keys) == keys
    check = check_store(rig.backdoor)
    assert sorted(check.final) == keys and not check.partial, check


def test_read_side_faults(rig: ReadRig, stored: tuple[pa.Table, list[str]]) -> None:
    table, keys = stored
    count = Count()
    settled: dict[str, list[str]] = {"ok": [], "raised": []}  # faults the budget may or may not absorb
    with timed(AREA, rig.backend), FaultProxy(rig.upstream) as proxy:
        archive = rig.open_through(proxy.url)
        for number, (name, rules, want, want_verify) in enumerate(SCENARIOS):
            key = keys[number % len(keys)]
            for op in ("read", "events", "verify") if name in STREAMED else ("read", "verify"):
                proxy.clear()
                made = [proxy.add(rule) for rule in rules(rig, key)]
                proxy.add(
                    Rule(
                        action="pass", method="GET", path=rig.list_path, set_query=rig.page_query, times=None
                    )
                )
                outcome = _run(op, archive, table)
                if want == "either" and op != "verify":
                    settled[outcome[0]].append(f"{name} ({op})")
                pages = [r for r in proxy.log if r.method == "GET" and re.search(rig.next_page, r.target)]
                assert pages, f"{name}: the listing was not paged: {[r.target for r in proxy.log]}"
                applied = sum(rule.applied for rule in made)
                assert applied, f"{name} / {op}: the fault never matched ({[r.target for r in proxy.log]})"
                count.faults += applied
                _judge(op, outcome, want, want_verify, table, key, count)
        # Deleted between the listing and the GET: the GET of `key` deletes it first, for real.
        for op in ("read", "events", "verify"):
            key = keys[5]
            proxy.clear()
            proxy.add(
                Rule(action="pass", method="GET", path=rig.get_path(key), hook=lambda k=key: rig.delete(k))
            )
            proxy.add(
                Rule(action="pass", method="GET", path=rig.list_path, set_query=rig.page_query, times=None)
            )
            outcome = _run(op, archive, table)
            count.faults += 1
            _judge(op, outcome, "raise", "problem", table, key, count)
            assert key not in check_store(rig.backdoor).final
            _restore(rig, table, keys)
    _restore(rig, table, keys)
    tally(
        AREA,
        rig.backend,
        f"{len(SCENARIOS) + 1} scenarios x read/verify ({len(STREAMED) + 1} also events) over a paged "
        f"listing of {len(keys)} objects: "
        "5xx on GET and list pages (within and past the budget), GET bodies cut or short, list pages cut "
        "or reset, an object deleted between list and get; each read exact or a clear error. One-off faults "
        f"absorbed by a retry: {', '.join(settled['ok']) or 'none'}; failed the read (clear error): "
        f"{', '.join(settled['raised']) or 'none'}",
        trials=count.trials,
        faults=count.faults,
        events_checked=count.events,
        errors_raised=count.errors,
        events_lost=count.lost,
        partial_objects=count.partial,
    )


def test_s3_get_refetches_a_cut_body_at_most_max_attempts_times(s3_rig: ReadRig) -> None:
    """A GET body cut mid-way is fetched again (botocore does not retry body reads): exact, or a clear error."""
    attempts = 3
    table = make_table(ROWS, seed=29)
    window = _window(table)
    keys = sorted(s3_rig.direct.archive("acme", *window, table).keys)
    key = keys[2]
    expected = sorted(table.column("event_id").to_pylist())
    with FaultProxy(s3_rig.upstream) as proxy:
        url = archive_url("s3", s3_rig.backdoor.bucket, "cold/tier", proxy.url)
        archive = coldtier.open_archive(url, **CREDENTIALS, max_attempts=attempts)

        def gets() -> int:
            return sum(
                1 for r in proxy.log if r.method == "GET" and re.search(s3_rig.get_path(key), r.target)
            )

        cut_once = proxy.add(_get(s3_rig, key, action="truncate", times=1))
        got = bounded(lambda: archive.read("acme", *window))
        assert sorted(got.column("event_id").to_pylist()) == expected
        assert cut_once.applied == 1 and gets() == 2, [r.target for r in proxy.log]

        proxy.clear()
        always = proxy.add(_get(s3_rig, key, action="truncate", times=None))
        with pytest.raises(coldtier.ArchiveReadError, match=re.escape(key)):
            bounded(lambda: archive.read("acme", *window))
        assert gets() == attempts and always.applied == attempts, [r.target for r in proxy.log]

        proxy.clear()
        always = proxy.add(_get(s3_rig, key, action="truncate", times=None))
        report = bounded(lambda: archive.verify())
        assert not report.ok and [p.key for p in report.problems] == [key], report.problems
        assert "cannot be read" in report.problems[0].message, report.problems
        assert report.objects == len(keys) and report.events == ROWS - OBJECT_EVENTS, report
        assert gets() == attempts, [r.target for r in proxy.log]
    assert sorted(check_store(s3_rig.backdoor).final) == keys
