"""Hostile URLs and options: refused with InvalidRequest, the credential never echoed.

The hostile-input scenarios that need storage (look-alike and encoded tenant
ids against every API, timestamps in other zones and units, Arrow streams,
huge events, far-away dates) are the shipped suite
``coldtier.testing.HostileInputTests``, run by each backend's test file.  This
file holds what needs no storage: URLs carrying credentials or unknown options,
for every scheme.
"""

from __future__ import annotations

from typing import Any

import pytest

import coldtier
from coldtier import InvalidRequest
from tests._reliability import tally

AREA = "hostile input"


# -- URLs and options --------------------------------------------------------------------

FAKE_SECRET = "FAKE-SECRET-c0ldt1er-8f3a"


@pytest.mark.parametrize(
    ("url", "options"),
    [
        (f"s3://AKIAFAKE:{FAKE_SECRET}@bucket/prefix", {}),
        (f"s3://{FAKE_SECRET}@bucket/prefix", {}),
        (f"r2://AKIAFAKE:{FAKE_SECRET}@bucket/prefix?account_id=abc", {}),
        (f"gs://oauth2:{FAKE_SECRET}@bucket/prefix", {}),
        (f"file://user:{FAKE_SECRET}@localhost/tmp/x", {}),
        (f"memory://user:{FAKE_SECRET}@name", {}),
        (f"s3://bucket/prefix?secret={FAKE_SECRET}", {}),
        (f"s3://bucket/prefix?key=AKIAFAKE&token={FAKE_SECRET}", {}),
        (f"r2://bucket/prefix?account_id=abc&secret={FAKE_SECRET}", {}),
        (f"gs://bucket/prefix?token={FAKE_SECRET}", {}),
        (f"s3://bucket/prefix?aws_secret_access_key={FAKE_SECRET}", {}),
        (f"s3://bucket/prefix?password={FAKE_SECRET}", {}),
        ("s3://bucket/prefix", {"secret_key": FAKE_SECRET}),
        ("s3://bucket/prefix", {"aws_session_token": FAKE_SECRET}),
        ("gs://bucket/prefix", {"credentials": FAKE_SECRET}),
        ("memory://name", {"token": FAKE_SECRET}),
        ("file:///tmp/x", {"secret": FAKE_SECRET}),
        ("s3://bucket/prefix?region=eu-west-1&regoin=eu-west-1", {}),
        ("s3://bucket/prefix?endpoint_url=http://127.0.0.1:1&endpoint_url=http://127.0.0.2:1", {}),
        (f"s3://bucket/prefix#{FAKE_SECRET}", {}),
        ("memory://name?compression=lzma", {}),
        ("memory://name?workers=-1", {}),
        ("memory://name?max_object_bytes=0", {}),
        ("file://remote-host/tmp/x", {}),
    ],
)
def test_bad_urls_and_options_are_refused_without_echoing_secrets(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as info:
        coldtier.open_archive(url, **options)
    tally(AREA, "urls", inputs=1, errors_raised=1, note="URLs and options with credentials or unknown names")
    texts = [str(info.value), repr(info.value), *(str(a) for a in info.value.args)]
    cause = info.value.__cause__ or info.value.__context__
    while cause is not None:
        texts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    assert not [t for t in texts if FAKE_SECRET in t], texts
