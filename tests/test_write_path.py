"""The write path's fast routes agree with the obvious slow ones.

``from_events`` converts column-wise (one ``orjson`` call per column, a hashed
uniqueness check); these tests hold it to the per-event definition, including
its fallbacks, and check that objects are deterministic and readable by other
Parquet readers.
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import coldtier
from coldtier import _format, _validate
from coldtier._validate import arrow as _arrow_input
from coldtier.testing import make_events, window_of
from coldtier.testing._data import make_table

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


def reference(events: list[coldtier.Event]) -> list[dict[str, Any]]:
    """What each stored row must hold, computed event by event."""
    return [
        {
            "event_id": str(e.id),
            "event_type": e.event_type,
            "entity_id": e.entity_id,
            "payload": orjson.dumps(e.payload).decode(),
            "timestamp": (e.timestamp - EPOCH) // US,
            "metadata": None if e.metadata is None else orjson.dumps(e.metadata).decode(),
            "version": e.version,
        }
        for e in events
    ]


def converted(events: list[coldtier.Event]) -> list[dict[str, Any]]:
    table = _validate.from_events("acme", _validate.window(*window_of(events)), events)
    assert table.schema == _format.SCHEMA
    rows = table.to_pylist()
    for row in rows:
        row["timestamp"] = (row["timestamp"].replace(tzinfo=UTC) - EPOCH) // US
    return rows


def varied_events() -> list[coldtier.Event]:
    zones = [
        UTC,
        timezone(timedelta(hours=5, minutes=30)),
        ZoneInfo("Europe/Berlin"),
        ZoneInfo("America/New_York"),
    ]
    events = make_events("acme", 400, start=datetime(2024, 10, 27, tzinfo=UTC), step=timedelta(seconds=97))
    out = []
    for i, e in enumerate(events):
        ts = e.timestamp.astimezone(zones[i % 4]).replace(fold=i % 2) + US * i
        payload: Any = [e.payload, None, "x\ny", {"k": [1.5, True]}, "", 0, "☕\u2028"][i % 7]
        out.append(replace(e, timestamp=ts, payload=payload, version=[0, 1, 2**64 - 1][i % 3]))
    return out


def test_from_events_matches_the_per_event_definition() -> None:
    events = varied_events()
    assert converted(events) == reference(events)


def test_json_that_a_list_cannot_hold_falls_back_per_event() -> None:
    events = make_events("acme", 5)
    deep: Any = "leaf"
    for _ in range(254):  # orjson's depth limit holds one value, not the list around it
        deep = [deep]
    events[2] = replace(events[2], payload=deep)
    events[3] = replace(events[3], payload={"f": orjson.Fragment(b"1,\n,2")})  # the separator, verbatim
    try:
        orjson.dumps(deep)
    except orjson.JSONEncodeError:
        pytest.skip("this orjson refuses depth 255 on its own")
    assert converted(events) == reference(events)


def test_the_first_offending_event_is_named_across_checks() -> None:
    events = make_events("acme", 10)
    start, end = window_of(events)
    events[3] = replace(events[3], version=-1)
    events[6] = replace(events[6], tenant_id="acme-eu")
    with pytest.raises(coldtier.InvalidRequest, match="#3"):
        _validate.from_events("acme", _validate.window(start, end), events)


def test_duplicates_are_found_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    table = make_table(1000)
    ids = table.column("event_id").to_pylist()
    ids[700] = ids[12].upper()  # the same UUID, in upper case
    table = table.set_column(0, "event_id", pa.array(ids))
    win = _validate.window(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))
    with pytest.raises(coldtier.InvalidRequest, match=r"#700 .* #12 "):
        _validate.from_arrow("acme", win, table)
    unique = make_table(1000)
    monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy now fails
    assert not _arrow_input._surely_unique(table.column("event_id"))
    with pytest.raises(coldtier.InvalidRequest, match=r"#700 .* #12 "):
        _validate.from_arrow("acme", win, table)
    assert _validate.from_arrow("acme", win, unique).num_rows == 1000


def test_hashed_uniqueness_sees_every_byte() -> None:
    base = str(uuid.UUID(int=0x0123456789ABCDEF0123456789ABCDEF))
    variants = [base] + [
        base[:i] + ("0" if base[i] != "0" else "1") + base[i + 1 :] for i in range(36) if base[i] != "-"
    ]
    assert _arrow_input._surely_unique(pa.chunked_array([pa.array(variants[:10]), pa.array(variants[10:])]))
    assert not _arrow_input._surely_unique(pa.chunked_array([pa.array(variants), pa.array([variants[17]])]))


def test_objects_are_deterministic_and_readable_elsewhere(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    polars = pytest.importorskip("polars")
    table = make_table(300_000)
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)
    keys = {
        workers: coldtier.open_archive(str(tmp_path / f"w{workers}"), workers=workers)
        .archive("acme", start, end, table)
        .keys
        for workers in (1, 3)
    }
    assert keys[1] == keys[3] and len(keys[1]) == 2
    path = tmp_path / "w1" / keys[1][0]
    meta = pq.ParquetFile(path).metadata
    assert meta.schema.to_arrow_schema().names == _format.SCHEMA.names
    encodings = meta.row_group(0).column(4).encodings
    assert "DELTA_BINARY_PACKED" in encodings
    got = pq.read_table(path)
    assert got.column("event_id").to_pylist() == table.column("event_id").slice(0, got.num_rows).to_pylist()
    with duckdb.connect() as con:
        count = con.sql(
            f"SELECT count(DISTINCT event_id), max(timestamp) FROM read_parquet('{path}')"
        ).fetchall()[0]
    assert count[0] == got.num_rows
    assert polars.read_parquet(path).height == got.num_rows


def test_ids_checked_while_parts_encode_hold_back_every_write(tmp_path: Path) -> None:
    table = make_table(40)
    ids = table.column("event_id").to_pylist()
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)
    archive = coldtier.open_archive(str(tmp_path / "a"), object_events=4, workers=4)
    for bad in ([*ids[:39], "not-a-uuid"], [*ids[:39], ids[0]]):
        with pytest.raises(coldtier.InvalidRequest, match="#39"):
            archive.archive("acme", start, end, table.set_column(0, "event_id", pa.array(bad)))
        assert not list((tmp_path / "a").rglob("*.parquet"))
    upper = table.set_column(0, "event_id", pa.array([i.upper() for i in ids]))
    receipt = archive.archive("acme", start, end, upper)
    assert len(receipt.keys) == 10 and receipt.created
    again = coldtier.open_archive(str(tmp_path / "a"), workers=1, object_events=4).archive(
        "acme", start, end, table
    )
    assert again.keys == receipt.keys and not again.created


def test_whole_buffer_uuid_match_agrees_with_the_row_regex() -> None:
    table = make_table(2000)
    ids = table.column("event_id").to_pylist()
    win = _validate.window(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))
    sliced = pa.concat_tables([table.slice(3, 900), table.slice(903, 1097)])  # chunks at offsets
    assert sliced.column("event_id").num_chunks == 2
    assert _arrow_input.all_canonical_uuids(_validate.conform_arrow("acme", win, sliced).column("event_id"))
    assert _validate.from_arrow("acme", win, sliced).column("event_id").to_pylist() == ids[3:]
    moved = ids[1500][:8] + ids[1500][9] + "-" + ids[1500][10:]  # 36 bytes, dash one place late
    for bad in (moved, ids[1500][:35] + "g", ids[1500][:35] + "é"[:1]):
        column = pa.chunked_array([ids[:1000], [*ids[1000:1500], bad, *ids[1501:]]])
        assert not _arrow_input.all_canonical_uuids(column)
        with pytest.raises(coldtier.InvalidRequest, match="#1500"):
            _validate.from_arrow("acme", win, table.set_column(0, "event_id", column))


@pytest.mark.parametrize("resolution_us", [1, 1_000_000, 10**12])
def test_sort_events_agrees_with_a_full_sort(resolution_us: int) -> None:
    table = make_table(5000, step_us=997)
    coarse = pa.array(
        [t // resolution_us * resolution_us for t in table.column("timestamp").cast(pa.int64()).to_pylist()]
    )
    table = table.set_column(4, "timestamp", coarse.cast(pa.timestamp("us")))
    keys = [("timestamp", "ascending"), ("event_id", "ascending")]
    want = table.sort_by(keys)
    assert _format.sort_events(table).equals(want)  # time order, ties unordered (or no ties)
    assert _format.sort_events(want) is want  # already in order: returned as is
    shuffled = table.take(pa.array(list(range(4999, -1, -1))))
    assert _format.sort_events(shuffled).equals(want)


def test_a_failing_store_fails_the_batch_without_hanging(tmp_path: Path) -> None:
    table = make_table(50)
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)
    root = tmp_path / "a"
    (root / "acme").mkdir(parents=True)
    (root / "acme" / "2024-03").write_text("a file where the month directory belongs")
    archive = coldtier.open_archive(str(root), object_events=3, workers=3)
    with pytest.raises(coldtier.ArchiveWriteError):
        archive.archive("acme", start, end, table)
    assert not list(root.rglob("*.parquet"))


JSON_TEXTS = [
    '{"a":1}',
    "[]",
    '"x"',
    "0",
    "-0",
    "1e308",
    "1E-400",
    '"e123 1e999 inside a string"',
    " 1 ",
    "null",
    "1" * 99,
    "[" * 200 + "]" * 200,
    '{"a":[1,2,{"b":null}],"c":"\\u00e9\\ud83d\\ude00"}',
    "1e309",
    "1E+400",
    "-2e308",
    "1" * 400,
    "1" + "0" * 210 + "e99",
    "NaN",
    "Infinity",
    "[1,2",
    "1 2",
    "1,2",
    "",
    "{'a':1}",
    '{"a":1,}',
    '"\\ud800"',
    '"tab\tinside"',
    "[" * 1100 + "]" * 1100,
    "01",
    "1.",
]


@pytest.mark.parametrize("fast", [True, False], ids=["msgspec-if-installed", "orjson-only"])
@pytest.mark.parametrize("column", ["payload", "metadata"])
def test_json_check_accepts_exactly_what_orjson_parses(
    fast: bool, column: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not fast:
        monkeypatch.setitem(sys.modules, "msgspec", None)
    win = _validate.window(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))
    base = make_table(70_000)  # over one 65,536-value slice
    for text in JSON_TEXTS:
        try:
            orjson.loads(text)
            valid = True
        except orjson.JSONDecodeError:
            valid = False
        for row in (3, 69_000):
            values = base.column(column).to_pylist()
            values[row] = text
            table = base.set_column(
                base.schema.get_field_index(column), column, pa.array(values, pa.string())
            )
            if valid:
                assert _validate.from_arrow("acme", win, table).num_rows == 70_000, text[:30]
            else:
                with pytest.raises(coldtier.InvalidRequest, match=f"#{row} .*{column} is not JSON"):
                    _validate.from_arrow("acme", win, table)


#: Values that are not JSON alone but join into a JSON array of as many elements
#: (each group: its values side by side, and the first that is not JSON).
JOINED_ONLY = [
    (["1,2", "[3", "4]"], 0),  # [1,2,[3,4]]: one value too many, then one too few
    (['"a', 'b"', "1,2"], 0),  # ["a,b",1,2]
    (["[3", "4]", "5,6"], 0),  # [[3,4],5,6]
    (["{}", '{"a":[1', '2]}', "7,8"], 1),
]


@pytest.mark.parametrize(("texts", "first_bad"), JOINED_ONLY, ids=["brackets", "quotes", "after", "later"])
def test_json_check_refuses_values_that_parse_only_joined(
    texts: list[str], first_bad: int, tmp_path: Path
) -> None:
    """Each value is JSON on its own, not just the batch's values side by side (DESIGN.md §2.6)."""
    base = make_table(10_000)  # over the size checked value by value
    row = 5_000
    values = base.column("payload").to_pylist()
    values[row : row + len(texts)] = texts
    table = base.set_column(base.schema.get_field_index("payload"), "payload", pa.array(values, pa.string()))
    start = table.column("timestamp")[0].as_py().replace(tzinfo=UTC)
    end = table.column("timestamp")[len(table) - 1].as_py().replace(tzinfo=UTC)
    archive = coldtier.open_archive(str(tmp_path))
    with pytest.raises(coldtier.InvalidRequest, match=f"#{row + first_bad} .*payload is not JSON"):
        archive.archive("acme", start, end, table)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_json_check_of_more_payload_text_than_one_arrow_string_holds(tmp_path: Path) -> None:
    """70,000 payloads of 34 KB: their first 65,536 alone are more than an Arrow string holds (2 GiB).

    The JSON check took 65,536 values as one slice, and failed on them with a raw
    ``ArrowCapacityError``; its slices are bounded by bytes too now.
    """
    n = 70_000
    base = make_table(n)
    numbers = pc.cast(pa.array(range(n)), pa.string())
    tail = '","pad":"' + "x" * 34_000 + '"}'
    pieces = [pc.binary_join_element_wise('{"n":"', numbers.slice(at, 10_000), tail, "") for at in range(0, n, 10_000)]
    assert sum(p.nbytes for p in pieces[:6]) + pieces[6].slice(0, 5_536).nbytes > 2**31
    start = base.column("timestamp")[0].as_py().replace(tzinfo=UTC)
    end = base.column("timestamp")[n - 1].as_py().replace(tzinfo=UTC)
    archive = coldtier.open_archive(str(tmp_path))
    column = base.schema.get_field_index("payload")

    bad = pieces[6].to_pylist()
    bad[9_000] = bad[9_000][:-1]  # row 69,000: the closing brace cut off
    broken = base.set_column(column, "payload", pa.chunked_array([*pieces[:6], pa.array(bad)]))
    with pytest.raises(coldtier.InvalidRequest, match=r"#69000 .*payload is not JSON"):
        archive.archive("acme", start, end, broken)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []

    table = base.set_column(column, "payload", pa.chunked_array(pieces))
    receipt = archive.archive("acme", start, end, table)
    assert receipt.events == n and receipt.created
    stored = pa.concat_tables(pq.read_table(tmp_path / key, columns=["event_id"]) for key in receipt.keys)
    assert sorted(stored.column("event_id").to_pylist()) == sorted(base.column("event_id").to_pylist())

    # The same events backwards: sorting them took all 2.2 GB in one Arrow string (ArrowInvalid).
    backwards = pa.concat_tables([table.slice(at, 10_000) for at in range(60_000, -1, -10_000)])
    again = archive.archive("acme", start, end, backwards)
    assert again.keys == receipt.keys and not again.created


def test_take_in_pieces_gives_the_rows_arrow_take_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """The route :func:`_format.take` takes past 2 GiB of text, at a few KB (the limit lowered)."""
    table = make_table(5_000)
    order = pa.array(np.random.default_rng(7).permutation(len(table)))
    monkeypatch.setattr(_format, "_TAKE_BYTES", 4_096)
    pieced = _format.take(table, order)
    assert pieced.num_rows == len(table) and pieced.column("payload").num_chunks > 10
    assert pieced.schema == table.schema and pieced.equals(table.take(order))


@pytest.mark.parametrize("sizes", [[], [5], [1] * 10, [3, 9, 1, 1, 1, 20, 2, 2], [0, 0, 7, 0]])
@pytest.mark.parametrize(("max_bytes", "max_rows"), [(4, None), (4, 2), (100, 3), (1, None)])
def test_bounded_slices_cover_every_row_once_within_bounds(
    sizes: list[int], max_bytes: int, max_rows: int | None
) -> None:
    ends = np.cumsum(np.array(sizes, np.int64))
    ranges = list(_format.bounded_slices(ends, max_bytes, max_rows))
    assert [i for a, b in ranges for i in range(a, b)] == list(range(len(sizes)))
    for a, b in ranges:
        assert b > a and (max_rows is None or b - a <= max_rows)
        assert sum(sizes[a:b]) <= max_bytes or b - a == 1  # one row alone may be larger
        if b < len(sizes) and (max_rows is None or b - a < max_rows):
            assert sum(sizes[a : b + 1]) > max_bytes  # no range stops short


def test_a_stream_refuses_an_id_repeated_in_a_later_part(tmp_path: Path) -> None:
    """Each event id at most once per call, across parts (DESIGN.md §2.6): the earlier parts stay stored."""
    root = tmp_path / "archive"
    root.mkdir()
    archive = coldtier.open_archive(str(root), object_events=100)
    table = make_table(350)
    ids = table.column("event_id").to_pylist()
    repeated = table.set_column(0, "event_id", pa.array([*ids[:-1], ids[0]], pa.string()))
    start = repeated.column("timestamp")[0].as_py().replace(tzinfo=UTC)
    end = repeated.column("timestamp")[349].as_py().replace(tzinfo=UTC)
    reader = pa.RecordBatchReader.from_batches(repeated.schema, repeated.to_batches(max_chunksize=64))
    with pytest.raises(coldtier.InvalidRequest, match=f"{ids[0]}.*earlier part of this stream"):
        archive.archive("acme", start, end, reader)
    stored = sorted(p.name for p in root.rglob("*.parquet"))
    assert len(stored) == 3  # the parts before the bad one, each complete
    assert archive.verify().ok
    # The same stream without the repeat is stored whole, and reuses the three parts.
    clean = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=64))
    receipt = archive.archive("acme", start, end, clean)
    assert receipt.events == 350 and len(receipt.keys) == 4
    assert archive.read("acme").num_rows == 350


def test_seen_ids_confirms_a_hash_match_against_the_earlier_ids() -> None:
    from coldtier._validate.stream import SeenIds

    ids = pa.chunked_array([pa.array([str(uuid.UUID(int=i)) for i in range(1000)])])
    seen = SeenIds()
    seen.add(ids, lambda: [])
    # The same hashes, but the earlier parts' ids (the exact source) hold none of them: no refusal.
    seen.add(ids, lambda: [pa.array([str(uuid.UUID(int=10**6))])])
    with pytest.raises(coldtier.InvalidRequest, match=str(uuid.UUID(int=7))):
        seen.add(ids.slice(7, 1), lambda: [ids.combine_chunks()])
