"""The format-2 logical digest (``coldtier._digest``) against its spec, ``docs/FORMAT.md``.

* the test vectors and the worked example are read out of FORMAT.md, so the
  document and the code cannot drift apart;
* :func:`reference_digest` is an independent, row-by-row implementation
  written from the spec alone (no numpy, no Arrow buffers), compared with the
  fast one on random tables;
* invariance (chunking, slicing, Arrow string variants, Parquet round trips
  with any writer options) and sensitivity (every single-field change, rows
  added/removed/swapped, null vs "null", characters moving between fields).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldtier import _digest, _format
from coldtier._digest import DIGEST_VERSION, logical_digest

FORMAT_MD = Path(__file__).resolve().parent.parent / "docs" / "FORMAT.md"

NAMES = ("event_id", "event_type", "entity_id", "payload", "timestamp", "metadata", "version")
STRINGS = ("event_id", "event_type", "entity_id", "payload")
TS_MIN, TS_MAX = -(2**63), 2**63 - 1
U64_MAX = 2**64 - 1


# ---------------------------------------------------------------------------
# The reference implementation: docs/FORMAT.md, "The logical digest", row by row.

Row = dict[str, Any]


def _u32(n: int) -> bytes:
    return struct.pack("<I", n)


def _str(s: str) -> bytes:
    raw = s.encode("utf-8")
    return _u32(len(raw)) + raw


def reference_header(rows: int) -> bytes:
    out = _str("coldtier-logical-v1") + struct.pack("<Q", rows) + _u32(7)
    for name, label, nullable in (
        ("event_id", "string", 0),
        ("event_type", "string", 0),
        ("entity_id", "string", 0),
        ("payload", "string", 0),
        ("timestamp", "timestamp[us]", 0),
        ("metadata", "string", 1),
        ("version", "uint64", 0),
    ):
        out += _str(name) + _str(label) + bytes([nullable])
    return out


def reference_pieces(rows: list[Row]) -> list[bytes]:
    pieces = []
    for name in STRINGS:
        lengths = b"".join(_u32(len(row[name].encode("utf-8"))) for row in rows)
        values = b"".join(row[name].encode("utf-8") for row in rows)
        pieces.append(lengths + values)
    pieces.append(b"".join(struct.pack("<q", row["timestamp"]) for row in rows))
    validity = b"".join(b"\x00" if row["metadata"] is None else b"\x01" for row in rows)
    lengths = b"".join(_u32(0 if row["metadata"] is None else len(row["metadata"].encode())) for row in rows)
    values = b"".join(b"" if row["metadata"] is None else row["metadata"].encode() for row in rows)
    pieces.append(validity + lengths + values)
    pieces.append(b"".join(struct.pack("<Q", row["version"]) for row in rows))
    return pieces


def reference_digest(rows: list[Row]) -> str:
    h = hashlib.sha256(reference_header(len(rows)))
    for piece in reference_pieces(rows):
        h.update(hashlib.sha256(piece).digest())
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Helpers


def table_of(rows: list[Row]) -> pa.Table:
    """A :data:`_format.SCHEMA` table of ``rows`` (timestamps as integer microseconds)."""
    columns = {name: [row[name] for row in rows] for name in NAMES}
    return pa.table(
        {
            **{name: pa.array(columns[name], pa.string()) for name in STRINGS},
            "timestamp": pa.array(columns["timestamp"], pa.int64()).cast(pa.timestamp("us")),
            "metadata": pa.array(columns["metadata"], pa.string()),
            "version": pa.array(columns["version"], pa.uint64()),
        },
        schema=_format.SCHEMA,
    )


def rows_of(table: pa.Table) -> list[Row]:
    table = table.set_column(4, "timestamp", table.column("timestamp").cast(pa.int64()))
    return table.to_pylist()


def rechunk(table: pa.Table, cuts: list[int]) -> pa.Table:
    """``table`` with every column cut into chunks at ``cuts`` (row indices)."""
    bounds = [0, *sorted({min(max(c, 0), table.num_rows) for c in cuts}), table.num_rows]
    parts = [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)]
    return pa.concat_tables(parts) if parts else table


ROW = {
    "event_id": "0190a3c4-0000-7000-8000-000000000001",
    "event_type": "order.created",
    "entity_id": "order-1",
    "payload": '{"n":1}',
    "timestamp": 1_709_251_200_000_000,
    "metadata": '{"source":"test"}',
    "version": 1,
}


def sample_rows(n: int = 5) -> list[Row]:
    rows = []
    for i in range(n):
        rows.append(
            {
                **ROW,
                "event_id": f"0190a3c4-0000-7000-8000-{i:012d}",
                "entity_id": f"order-{i % 2}",
                "payload": f'{{"n":{i}}}',
                "timestamp": ROW["timestamp"] + i * 1_000_000,
                "metadata": None if i % 2 else f'{{"i":{i}}}',
                "version": i + 1,
            }
        )
    return rows


# ---------------------------------------------------------------------------
# The spec: docs/FORMAT.md


def doc_vectors() -> list[dict[str, Any]]:
    text = FORMAT_MD.read_text(encoding="utf-8")
    blocks = re.findall(r"```json digest-vector\n(.*?)\n```", text, re.S)
    return [json.loads(block) for block in blocks]


def doc_worked_example() -> dict[str, str]:
    """``{section: hex}`` of the worked example: 'header', each column's piece, 'sha256 <column>', 'digest'."""
    text = FORMAT_MD.read_text(encoding="utf-8")
    (block,) = re.findall(r"```text worked-example\n(.*?)\n```", text, re.S)
    sections: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            words = line.split()
            if words[0] in ("sha256", "digest"):  # "sha256 <column> <hex>", "digest <hex>"
                sections[" ".join(words[:-1])] = words[-1]
                current = None
            else:  # "header" or "piece <column>"
                current = words[-1]
                sections[current] = ""
            continue
        assert current is not None, line
        hex_part = line.split("#", 1)[0].replace(" ", "")
        assert re.fullmatch(r"[0-9a-f]*", hex_part), line
        sections[current] += hex_part
    return sections


def test_doc_has_vectors() -> None:
    vectors = doc_vectors()
    assert len(vectors) >= 5
    assert any(not v["rows"] for v in vectors)


@pytest.mark.parametrize("vector", doc_vectors(), ids=lambda v: v["name"])
def test_doc_vectors(vector: dict[str, Any]) -> None:
    rows = vector["rows"]
    assert reference_digest(rows) == vector["digest"]
    assert logical_digest(table_of(rows)) == vector["digest"]


def test_doc_worked_example() -> None:
    sections = doc_worked_example()
    (example,) = [v for v in doc_vectors() if v["name"] == "worked-example"]
    rows = example["rows"]
    assert sections["header"] == reference_header(len(rows)).hex()
    assert _digest.header(len(rows)).hex() == sections["header"]
    pieces = reference_pieces(rows)
    fast = _digest.column_pieces(table_of(rows))
    for name, piece, fast_piece in zip(NAMES, pieces, fast, strict=True):
        assert sections[name] == piece.hex(), name
        assert fast_piece == piece, name
        assert sections[f"sha256 {name}"] == hashlib.sha256(piece).hexdigest(), name
    assert sections["digest"] == example["digest"] == reference_digest(rows)


def test_doc_names_the_version() -> None:
    text = FORMAT_MD.read_text(encoding="utf-8")
    assert DIGEST_VERSION == "coldtier-logical-v1"
    assert f'"{DIGEST_VERSION}"' in text


def test_columns_match_the_codec_schema() -> None:
    assert [(f.name, str(f.type), f.nullable) for f in _format.SCHEMA] == list(_digest.COLUMNS)
    assert tuple(name for name, _, _ in _digest.COLUMNS) == NAMES


# ---------------------------------------------------------------------------
# Fast vs reference on random tables

text = st.text(st.characters(codec="utf-8"), max_size=12)
rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "event_id": text,
            "event_type": text,
            "entity_id": text,
            "payload": text,
            "timestamp": st.one_of(st.sampled_from([TS_MIN, -1, 0, TS_MAX]), st.integers(TS_MIN, TS_MAX)),
            "metadata": st.one_of(st.none(), st.just("null"), st.just(""), text),
            "version": st.one_of(st.sampled_from([0, 1, U64_MAX]), st.integers(0, U64_MAX)),
        }
    ),
    max_size=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_strategy, cuts=st.lists(st.integers(0, 20), max_size=4), data=st.data())
def test_fast_matches_reference(rows: list[Row], cuts: list[int], data: st.DataObject) -> None:
    expected = reference_digest(rows)
    table = table_of(rows)
    assert logical_digest(table) == expected
    assert logical_digest(rechunk(table, cuts)) == expected
    # the same rows sliced out of a bigger table (non-zero offsets everywhere)
    before = data.draw(st.integers(0, 3))
    after = data.draw(st.integers(0, 3))
    padding = [{**ROW, "metadata": None}] * before
    bigger = rechunk(table_of(padding + rows + [ROW] * after), [before, before + len(rows) // 2])
    assert logical_digest(bigger.slice(before, len(rows))) == expected


def test_large_random_table_matches_reference() -> None:
    rng = np.random.default_rng(7)
    rows = [
        {
            "event_id": f"id-{i}",
            "event_type": "t" * int(rng.integers(0, 40)),
            "entity_id": "é" * int(rng.integers(0, 5)),
            "payload": json.dumps({"i": i, "x": "😀" * int(rng.integers(0, 3))}),
            "timestamp": int(rng.integers(-(2**62), 2**62)),
            "metadata": None if rng.random() < 0.3 else "m" * int(rng.integers(0, 9)),
            "version": int(rng.integers(0, 2**63)) * 2,
        }
        for i in range(3_000)
    ]
    table = rechunk(table_of(rows), [1, 999, 1000, 2500])
    assert logical_digest(table) == reference_digest(rows)


def test_threaded_and_serial_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from coldtier.testing._data import make_table

    table = rechunk(make_table(50_000), [7, 20_000, 20_001])
    monkeypatch.setattr(_digest, "_PARALLEL_ROWS", 0)
    threaded = logical_digest(table)
    monkeypatch.setattr(_digest, "_PARALLEL_ROWS", 1 << 62)
    assert logical_digest(table) == threaded
    assert logical_digest(table.combine_chunks()) == threaded
    assert reference_digest(rows_of(table.slice(0, 2_000))) == logical_digest(table.slice(0, 2_000))


# ---------------------------------------------------------------------------
# Invariance


def test_empty_and_zero_length_chunks() -> None:
    rows = sample_rows(3)
    table = table_of(rows)
    empty = table.slice(0, 0)
    assert logical_digest(pa.concat_tables([empty, table, empty])) == reference_digest(rows)
    assert logical_digest(empty) == reference_digest([])
    assert logical_digest(_format.SCHEMA.empty_table()) == reference_digest([])


def test_column_order_and_record_batch() -> None:
    rows = sample_rows()
    table = table_of(rows)
    expected = reference_digest(rows)
    assert logical_digest(table.select(list(reversed(NAMES)))) == expected
    assert logical_digest(table.to_batches()[0]) == expected


def _cast_strings(table: pa.Table, kind: pa.DataType) -> pa.Table:
    for name in (*STRINGS, "metadata"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, table.column(name).cast(kind))
    return table


@pytest.mark.parametrize("kind", [pa.large_string(), pa.string_view()], ids=str)
def test_string_variants(kind: pa.DataType) -> None:
    rows = sample_rows()
    table = rechunk(table_of(rows), [2])
    assert logical_digest(_cast_strings(table, kind)) == reference_digest(rows)
    assert logical_digest(_cast_strings(table, kind).slice(1, 3)) == reference_digest(rows[1:4])


def test_dictionary_encoded() -> None:
    rows = sample_rows()
    table = table_of(rows)
    for name in (*STRINGS, "metadata"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, table.column(name).dictionary_encode())
    assert logical_digest(table) == reference_digest(rows)
    assert logical_digest(table.slice(2)) == reference_digest(rows[2:])


def test_timestamp_zone_label_and_integer_versions() -> None:
    rows = sample_rows()
    table = table_of(rows)
    expected = reference_digest(rows)
    aware = table.set_column(4, "timestamp", table.column("timestamp").cast(pa.timestamp("us", "UTC")))
    assert logical_digest(aware) == expected
    for kind in (pa.int64(), pa.uint32(), pa.int8()):
        assert logical_digest(table.set_column(6, "version", table.column("version").cast(kind))) == expected


def test_bytes_under_null_slots_do_not_count() -> None:
    """A null slot may span bytes of the data buffer (the Arrow spec allows it)."""
    validity = pa.py_buffer(bytes([0b101]))
    offsets = pa.py_buffer(np.array([0, 1, 4, 5], dtype=np.int32).tobytes())
    dirty = pa.Array.from_buffers(pa.string(), 3, [validity, offsets, pa.py_buffer(b"aXYZd")])
    dirty.validate(full=True)
    assert dirty.to_pylist() == ["a", None, "d"]
    rows = sample_rows(3)
    rows = [{**row, "metadata": value} for row, value in zip(rows, ["a", None, "d"], strict=True)]
    table = table_of(rows).set_column(5, "metadata", dirty)
    assert logical_digest(table) == reference_digest(rows)
    assert logical_digest(table.slice(1)) == reference_digest(rows[1:])
    large = table.set_column(5, "metadata", dirty.cast(pa.large_string()))
    assert logical_digest(large) == reference_digest(rows)


def test_buffer_padding_and_offsets_not_starting_at_zero() -> None:
    """Offsets that start past 0 and data buffers with trailing junk (built by hand)."""
    offsets = pa.py_buffer(np.array([3, 4, 4, 6], dtype=np.int32).tobytes() + b"\xff" * 20)
    junk = pa.Array.from_buffers(pa.string(), 3, [None, offsets, pa.py_buffer(b"???abcd" + b"\x00" * 57)])
    junk.validate(full=True)
    assert junk.to_pylist() == ["a", "", "bc"]
    rows = [{**row, "payload": value} for row, value in zip(sample_rows(3), ["a", "", "bc"], strict=True)]
    table = table_of(rows).set_column(3, "payload", junk)
    assert logical_digest(table) == reference_digest(rows)


PARQUET_OPTIONS: list[dict[str, Any]] = [
    {"compression": "none"},
    {"compression": "snappy", "row_group_size": 7},
    {"compression": "zstd", "compression_level": 19, "row_group_size": 100},
    {"compression": "gzip", "use_dictionary": False, "data_page_version": "2.0"},
    {"compression": "lz4", "use_dictionary": True, "write_statistics": False, "data_page_size": 64},
    {"compression": "brotli", "column_encoding": {"timestamp": "DELTA_BINARY_PACKED"}, "use_dictionary": False},
    {"compression": "zstd", "use_byte_stream_split": ["timestamp"], "use_dictionary": False},
]


@pytest.mark.parametrize("options", PARQUET_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_parquet_round_trip(options: dict[str, Any]) -> None:
    from coldtier.testing._data import make_table

    table = make_table(1_000, start_us=-5_000_000)
    expected = logical_digest(table)
    assert expected == reference_digest(rows_of(table))
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    back = pq.read_table(io.BytesIO(sink.getvalue()))
    assert logical_digest(back) == expected
    as_dict = pq.read_table(io.BytesIO(sink.getvalue()), read_dictionary=[*STRINGS, "metadata"])
    assert logical_digest(as_dict) == expected
    batches = pq.ParquetFile(io.BytesIO(sink.getvalue())).iter_batches(batch_size=33)
    assert logical_digest(pa.Table.from_batches(list(batches))) == expected


@pytest.mark.parametrize("compression", ["zstd", "snappy", "none"])
def test_codec_encode_round_trip(compression: str) -> None:
    from coldtier.testing._data import make_table

    table = make_table(2_000)
    meta = {"coldtier.format": "2"}
    data = _format.encode(table.cast(_format.SCHEMA), meta, compression=compression, row_group_events=300)
    assert logical_digest(pq.read_table(io.BytesIO(data))) == logical_digest(table)


# ---------------------------------------------------------------------------
# Sensitivity


def _variants(value: Any, name: str) -> list[Any]:
    if name == "timestamp":
        return [value + 1, value - 1, -value - 1]
    if name == "version":
        return [value + 1, value ^ (1 << 63)]
    if name == "metadata":
        return ["null", "", value + " "] if value is not None else [None, "null", "", "x"]
    return [value + "x", value[:-1], value[:-1] + chr(ord(value[-1]) + 1), ""]


def test_every_single_field_change_changes_the_digest() -> None:
    rows = sample_rows(4)
    seen = {logical_digest(table_of(rows))}
    changes = 0
    for i in range(len(rows)):
        for name in NAMES:
            for value in _variants(rows[i][name], name):
                if value == rows[i][name]:
                    continue
                changed = [dict(row) for row in rows]
                changed[i][name] = value
                digest = logical_digest(table_of(changed))
                assert digest == reference_digest(changed)
                assert digest not in seen, (i, name, value)
                seen.add(digest)
                changes += 1
    assert changes > 80


def test_rows_added_removed_or_swapped() -> None:
    rows = sample_rows(4)
    digests = {
        logical_digest(table_of(rows)),
        logical_digest(table_of(rows[:-1])),
        logical_digest(table_of(rows[1:])),
        logical_digest(table_of([*rows, rows[-1]])),
        logical_digest(table_of([rows[1], rows[0], *rows[2:]])),
        logical_digest(table_of([])),
    }
    assert len(digests) == 6


def test_null_metadata_is_not_the_string_null() -> None:
    null, text, empty = ({**ROW, "metadata": m} for m in (None, "null", ""))
    assert len({logical_digest(table_of([r])) for r in (null, text, empty)}) == 3


TEXTS = (*STRINGS, "metadata")


@pytest.mark.parametrize("left,right", list(itertools.pairwise(TEXTS)))
def test_characters_moving_between_adjacent_fields(left: str, right: str) -> None:
    one = {**ROW, left: "ab", right: "c"}
    other = {**ROW, left: "a", right: "bc"}
    assert logical_digest(table_of([one])) != logical_digest(table_of([other]))


@pytest.mark.parametrize("name", [*STRINGS, "metadata"])
def test_characters_moving_between_rows(name: str) -> None:
    one = [{**ROW, name: "ab"}, {**ROW, name: "c"}]
    other = [{**ROW, name: "a"}, {**ROW, name: "bc"}]
    assert logical_digest(table_of(one)) != logical_digest(table_of(other))


def test_a_row_is_not_confused_with_two_half_rows() -> None:
    """Moving bytes from a string field into the neighbouring row's never collides with header/counts."""
    assert logical_digest(table_of([{**ROW, "payload": ""}])) != logical_digest(table_of([]))


# ---------------------------------------------------------------------------
# Refusals


def test_refuses_wrong_columns() -> None:
    table = table_of(sample_rows())
    with pytest.raises(ValueError, match="exactly the columns"):
        logical_digest(table.drop_columns(["metadata"]))
    with pytest.raises(ValueError, match="exactly the columns"):
        logical_digest(table.append_column("tenant_id", pa.array(["t"] * table.num_rows)))
    with pytest.raises(ValueError, match="exactly the columns"):
        logical_digest(table.rename_columns([*NAMES[:-1], "Version"]))


def test_refuses_nulls_outside_metadata() -> None:
    table = table_of(sample_rows(3))
    for index, name in enumerate(NAMES):
        if name == "metadata":
            continue
        column = table.column(name)
        nulled = pa.array([column[0].as_py(), None, column[2].as_py()], column.type)
        with pytest.raises(ValueError, match="not nullable"):
            logical_digest(table.set_column(index, name, nulled))


def test_refuses_wrong_types() -> None:
    table = table_of(sample_rows(3))
    with pytest.raises(ValueError, match="timestamp"):
        logical_digest(table.set_column(4, "timestamp", table.column("timestamp").cast(pa.timestamp("ms"))))
    with pytest.raises(ValueError, match="timestamp"):
        logical_digest(table.set_column(4, "timestamp", table.column("timestamp").cast(pa.int64())))
    with pytest.raises(ValueError, match="uint64"):
        logical_digest(table.set_column(6, "version", pa.array([1, -1, 2], pa.int64())))
    with pytest.raises(ValueError, match="uint64"):
        logical_digest(table.set_column(6, "version", pa.array([1.0, 2.0, 3.0])))
    with pytest.raises(ValueError, match="string"):
        logical_digest(table.set_column(0, "event_id", pa.array([b"a", b"b", b"c"], pa.binary())))
    with pytest.raises(ValueError, match="Table"):
        logical_digest({"event_id": []})  # type: ignore[arg-type]
