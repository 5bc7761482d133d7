"""Secrets: a recognisable fake credential never comes back out, on any path.

Each backend gets fake credentials it accepts (S3/R2: key, secret and
session token as keyword options; GCS: an OAuth token; local and memory have
none, so the credential is passed where a careless user would: as an unknown
option).  Then everything a user or a log can see is collected — the
description, ``repr``, every exception's text, cause chain and formatted
traceback, and every log record of every logger at DEBUG — on the success
path and on failure paths (unknown option, writes failing through the fault
proxy, a missing bucket, a refused probe, an integrity error, a corrupted
object found by ``verify``), and searched for the credential.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import coldtier
from coldtier import ColdTierError
from coldtier.testing import FaultProxy, Rule, make_events, window_of
from tests._moto import BotoBackdoor, archive_url
from tests._reliability import tally

AREA = "secrets"
KEY = "AKIACOLDTIERFAKE7Q2Z"
SECRET = "coldtier-fake-secret-9d81e4c0-DO-NOT-LEAK"
TOKEN = "coldtier-fake-session-token-51f7aa-DO-NOT-LEAK"
OAUTH = "ya29.coldtier-fake-oauth-token-DO-NOT-LEAK"
#: Loggers whose DEBUG records are the libraries' own wire traces (see test below).
WIRE_TRACE_LOGGERS = ("botocore", "aiobotocore", "urllib3")


@dataclass
class Secretive:
    backend: str
    url: Callable[[str], str]  # endpoint -> URL
    missing: Callable[[str], str]  # endpoint -> URL of a bucket that does not exist
    options: dict[str, Any]
    secrets: tuple[str, ...]
    backdoor: Any
    write: Rule  # matches object writes
    strip_precondition: Rule


@pytest.fixture(params=["s3", "r2", "gcs"])
def secretive(request: pytest.FixtureRequest) -> Iterator[tuple[Secretive, FaultProxy]]:
    backend = request.param
    if backend in ("s3", "r2"):
        moto_url = request.getfixturevalue("moto_url")
        bucket = request.getfixturevalue("fresh_bucket")
        client = request.getfixturevalue("s3_client")
        with FaultProxy(moto_url) as proxy:
            yield (
                Secretive(
                    backend,
                    lambda endpoint: archive_url(backend, bucket, "s", endpoint),
                    lambda endpoint: archive_url(backend, f"nb-{uuid.uuid4().hex[:8]}", "s", endpoint),
                    {"key": KEY, "secret": SECRET, "token": TOKEN},
                    (KEY, SECRET, TOKEN),
                    BotoBackdoor(client, bucket, "s"),
                    Rule(action="status", method="PUT", status=503, times=None),
                    Rule(action="pass", method="PUT", strip_header="If-None-Match", times=None),
                ),
                proxy,
            )
    else:
        from google.oauth2.credentials import Credentials

        from tests._fakegcs import HTTPBackdoor

        server = request.getfixturevalue("fake_gcs")
        bucket = request.getfixturevalue("gcs_bucket")
        upload = r"^/upload/storage/v1/b/[^/]+/o\?"
        with FaultProxy(server.url) as proxy:
            yield (
                Secretive(
                    backend,
                    lambda endpoint: f"gs://{bucket}/s?endpoint_url={endpoint}",
                    lambda endpoint: f"gs://nb-{uuid.uuid4().hex[:8]}/s?endpoint_url={endpoint}",
                    {"token": Credentials(OAUTH)},
                    (OAUTH,),
                    HTTPBackdoor(server, bucket, "s"),
                    Rule(action="status", method="POST", path=upload, status=503, times=None),
                    Rule(
                        action="pass", method="POST", path=upload, strip_query="ifGenerationMatch", times=None
                    ),
                ),
                proxy,
            )


def _texts(error: BaseException) -> list[str]:
    """Everything an exception shows: message, repr, args, causes, formatted traceback."""
    out = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out += [str(current), repr(current), *(repr(a) for a in current.args)]
        current = current.__cause__ or current.__context__
    return out


def _leaks(texts: list[str], secrets: tuple[str, ...]) -> list[str]:
    return [t[:300] for t in texts for s in secrets if s in t]


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return list(caplog.records)


#: What every LogRecord has; anything else came in ``extra=`` (coldtier.calls' fields) and is searched too.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _record_texts(records: list[logging.LogRecord]) -> list[tuple[str, int, str]]:
    out = []
    for r in records:
        text = r.getMessage()
        text += "".join(f" {k}={v!r}" for k, v in r.__dict__.items() if k not in _RECORD_ATTRS)
        if r.exc_info and r.exc_info[1] is not None:
            text += "".join(traceback.format_exception(r.exc_info[1]))
        out.append((r.name, r.levelno, text))
    return out


def test_credentials_never_come_back_out(
    secretive: tuple[Secretive, FaultProxy], caplog: pytest.LogCaptureFixture
) -> None:
    spec, proxy = secretive
    caplog.set_level(logging.DEBUG)  # the root and so every logger that propagates
    for name in ("botocore", "aiobotocore", "s3fs", "gcsfs", "fsspec", "aiohttp", "urllib3", "coldtier"):
        caplog.set_level(logging.DEBUG, logger=name)
    texts: list[str] = []
    paths = 0

    def failing(call: Callable[[], Any]) -> None:
        nonlocal paths
        with pytest.raises(Exception) as info:
            call()
        texts.extend(_texts(info.value))
        paths += 1

    archive = coldtier.open_archive(spec.url(proxy.url), **spec.options)
    texts += [archive.description(), repr(archive), str(archive)]
    events = make_events("acme", 20)
    window = window_of(events)
    # Success path: write, read, list, verify, probe.
    (key,) = archive.archive("acme", *window, events).keys
    archive.read("acme")
    archive.objects("acme")
    report = archive.verify()
    archive.probe()
    texts += [str(report), repr(report)]
    paths += 1
    # Failure paths.
    failing(lambda: coldtier.open_archive(spec.url(proxy.url), bogus_option=1, **spec.options))
    failing(lambda: coldtier.open_archive(spec.url(proxy.url) + "&region=x&region=y", **spec.options))
    proxy.add(spec.write)
    failing(
        lambda: coldtier.open_archive(spec.url(proxy.url), **spec.options).archive(
            "acme", *window, events[:5]
        )
    )
    proxy.clear()
    proxy.add(spec.strip_precondition)
    failing(archive.probe)
    proxy.clear()
    spec.backdoor.put(key, b"corrupted by the test")
    failing(lambda: archive.archive("acme", *window, events))  # IntegrityError
    bad = archive.verify()
    assert not bad.ok
    texts += [str(p) for p in bad.problems]
    missing = spec.missing(proxy.url)
    failing(lambda: coldtier.open_archive(missing, **spec.options).archive("acme", *window, events))
    # Reading a bucket that does not exist is ArchiveNotFound, never "an empty archive".
    failing(lambda: coldtier.open_archive(missing, **spec.options).verify())
    failing(lambda: coldtier.open_archive("http://127.0.0.1:1/x", **spec.options))

    # coldtier's own structured records were there to search: one INFO per archived batch, and
    # one ERROR per failed call (each with its fields in extra=).
    calls = [r for r in _records(caplog) if r.name == "coldtier.calls"]
    assert [r.levelno for r in calls if r.operation == "archive" and r.outcome == "ok"] == [logging.INFO]
    assert {r.outcome for r in calls if r.levelno == logging.ERROR} >= {"write_error", "integrity", "precondition"}
    assert all(r.archive == archive.description() or r.outcome != "ok" for r in calls)
    records = _record_texts(_records(caplog))
    own = [(n, lvl, t) for n, lvl, t in records if not n.startswith(WIRE_TRACE_LOGGERS)]
    wire = [(n, lvl, t) for n, lvl, t in records if n.startswith(WIRE_TRACE_LOGGERS)]
    leaked_text = _leaks(texts, spec.secrets)
    leaked_logs = [(n, t[:200]) for n, _, t in own for s in spec.secrets if s in t]
    # Even the libraries' DEBUG wire traces: coldtier masks what it was given (botocore logs headers).
    leaked_wire = [(n, t[:200]) for n, _, t in wire for s in spec.secrets if s in t]
    tally(
        AREA,
        spec.backend,
        trials=paths,
        inputs=len(texts) + len(records),
        partial_objects=0,
        errors_raised=paths - 1,
        note="trials: code paths (1 success, the rest failures); inputs: texts and log records searched",
    )
    assert leaked_text == [], leaked_text
    assert leaked_logs == [], leaked_logs
    assert leaked_wire == [], leaked_wire
    assert len(records) > 0  # DEBUG capture really was on


@pytest.mark.parametrize("url", ["memory://secrets", "file:///tmp/coldtier-secrets"])
@pytest.mark.parametrize("name", ["token", "secret", "key", "password", "credentials"])
def test_a_credential_given_to_a_backend_without_credentials_is_refused_unechoed(
    url: str, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ColdTierError) as info:
        coldtier.open_archive(url, **{name: SECRET})
    texts = _texts(info.value) + [t for _, _, t in _record_texts(_records(caplog))]
    tally(
        AREA,
        url.split(":")[0] if url.startswith("memory") else "local",
        trials=1,
        inputs=len(texts),
        errors_raised=1,
    )
    assert _leaks(texts, (SECRET,)) == []
