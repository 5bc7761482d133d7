"""Every mainstream reader reads every column of every object, for every codec (DESIGN.md §3).

One local archive per ``compression`` coldtier offers holds a realistic batch:
``acme`` through the Arrow path (split into several objects by
``object_events``, several row groups each; versions up to ``2**64 - 1``,
unicode, null and set metadata) and ``globex`` through the ``Event`` path
(``make_events``).  Each reader — pyarrow, DuckDB, Polars, DataFusion (arrow-rs,
allsource-core's Parquet crate), ClickHouse (chdb), fastparquet and
``pandas.read_parquet(engine="fastparquet")`` — reads every object file on
its own, and every column's values must equal, value and Python type alike,
what ``Archive.read_object`` gives for that object; all objects of a tenant
together must equal ``Archive.read`` and the input.

``python -m benchmarks.reader_matrix`` prints the same checks as a
reader x column table.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from coldtier import SCHEMA
from tests import _readers
from tests._readers import CODECS, COLUMNS, READERS, Sample

#: Readers whose package may be missing from a test environment (chdb is a ~180 MB wheel,
#: ~530 MB installed): skipped with the reason when the import fails, never otherwise.
OPTIONAL = {"chdb"}


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sample]:
    base = tmp_path_factory.mktemp("readers")
    return {codec: _readers.build(base / codec / "a", codec) for codec in CODECS}


def strict(values: list[Any]) -> list[tuple[type, Any]]:
    """Values with their Python types: ``1.0 == 1`` must not pass for an integer column."""
    return [(type(v), v) for v in values]


def need(reader: str) -> None:
    module = READERS[reader][0]
    if reader in OPTIONAL:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            pytest.skip(f"{module} does not import here ({exc}); it is in the test extra")


def test_sample_is_realistic(samples: dict[str, Sample]) -> None:
    """Several objects of several row groups; the awkward values are there."""
    sample = samples["zstd"]
    assert len(sample.paths["acme"]) >= 3
    assert len(sample.paths["globex"]) == 1
    for path in sample.paths["acme"]:
        assert pq.ParquetFile(path).metadata.num_row_groups >= 2
    acme = sample.archive.read("acme")
    versions = set(acme.column("version").to_pylist())
    assert {0, 2**53 + 1, 2**64 - 1} <= versions
    metadata = acme.column("metadata")
    assert 0 < metadata.null_count < len(metadata)
    assert any("𝄞" in p for p in acme.column("payload").to_pylist())
    globex = sample.archive.read("globex").column("metadata")
    assert 0 < globex.null_count < len(globex)


@pytest.mark.parametrize("codec", CODECS)
def test_archive_read_is_the_input(samples: dict[str, Sample], codec: str) -> None:
    sample = samples[codec]
    for tenant, given in sample.inputs.items():
        got = _readers._plain(sample.archive.read(tenant).select(list(COLUMNS)))
        assert _readers.sorted_rows(got) == _readers.sorted_rows(_readers._plain(given)), tenant


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("reader", list(READERS))
def test_reader_reads_every_column(samples: dict[str, Sample], reader: str, codec: str) -> None:
    need(reader)
    sample = samples[codec]
    for tenant, paths in sample.paths.items():
        reads = []
        for path in paths:
            got = _readers.read_file(reader, path)
            assert not got.errors, f"{reader} on {Path(path).name}: {got.errors}"
            want = _readers.expected(sample, path)
            for name in COLUMNS:
                assert strict(got.values[name]) == strict(want[name]), (
                    f"{reader}, {codec}: column {name} ({got.types[name]}) of {Path(path).name}"
                )
            reads.append(got.values)
        whole = _readers.sorted_rows(_readers.concat(reads))
        read = _readers._plain(sample.archive.read(tenant).select(list(COLUMNS)))
        assert whole == _readers.sorted_rows(read), tenant
        assert whole == _readers.sorted_rows(_readers._plain(sample.inputs[tenant])), tenant


def test_datafusion_schema_is_allsource_core(samples: dict[str, Sample]) -> None:
    """arrow-rs reads by column position and exact type: Utf8 (not Utf8View), Timestamp(us), UInt64."""
    context = _readers.datafusion_context()
    for sample in samples.values():
        for path in sample.paths["acme"] + sample.paths["globex"]:
            schema = context.read_parquet(path).schema()
            assert schema.names == SCHEMA.names
            assert [f.type for f in schema] == [f.type for f in SCHEMA], path
            assert pa.types.is_string(schema.field("event_id").type)  # not string_view
            assert [f.nullable for f in schema] == [f.nullable for f in SCHEMA]
