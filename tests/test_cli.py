"""The ``coldtier`` command, run as a subprocess, on the local backend and on S3 (moto).

Every command, its exit codes (0 ok, 1 problems, 2 usage or input error) and
its error paths: one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import coldtier
from coldtier import _validate
from coldtier.testing import make_events, window_of
from tests._moto import CREDENTIALS

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data" / "sample-events.jsonl"
ACME_LINES = [line for line in SAMPLE.read_text().splitlines() if '"tenant_id":"acme"' in line]
GLOBEX_LINES = [line for line in SAMPLE.read_text().splitlines() if '"tenant_id":"globex"' in line]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COLDTIER_"))}
    env.update(
        AWS_ACCESS_KEY_ID=CREDENTIALS["key"],
        AWS_SECRET_ACCESS_KEY=CREDENTIALS["secret"],
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONIOENCODING="utf-8",
    )
    env.update(extra or {})
    return env


def coldtier_cli(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "coldtier.cli", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=_env(env),
        timeout=120,
        check=False,
    )
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def assert_one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.code == code, (result.code, result.out, result.err)
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("coldtier: error: "), lines[0]
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@dataclass
class Target:
    """One archive the CLI is pointed at, with a backdoor to damage its objects."""

    name: str
    url: str
    corrupt: Callable[[str], None]
    put: Callable[[str, bytes], None]


@pytest.fixture(params=["local", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "local":
        root = tmp_path / "archive"

        def corrupt(key: str) -> None:
            path = root / key
            data = bytearray(path.read_bytes())
            data[100:104] = b"XXXX"
            path.write_bytes(bytes(data))

        def put(key: str, data: bytes) -> None:
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            (root / key).write_bytes(data)

        return Target("local", str(root), corrupt, put)
    moto_url = request.getfixturevalue("moto_url")
    bucket = request.getfixturevalue("fresh_bucket")
    client = request.getfixturevalue("s3_client")

    def corrupt_s3(key: str) -> None:
        body = client.get_object(Bucket=bucket, Key=f"cold/{key}")["Body"]
        with body:
            data = bytearray(body.read())
        data[100:104] = b"XXXX"
        client.put_object(Bucket=bucket, Key=f"cold/{key}", Body=bytes(data))

    def put_s3(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"cold/{key}", Body=data)

    url = f"s3://{bucket}/cold?endpoint_url={moto_url}&region=us-east-1"
    return Target("s3", url, corrupt_s3, put_s3)


@pytest.fixture
def acme_file(tmp_path: Path) -> Path:
    path = tmp_path / "acme.jsonl"
    path.write_text("\n".join(ACME_LINES) + "\n")
    return path


# ---------------------------------------------------------------------------
# The whole operator workflow, on each backend


def test_archive_ls_read_verify_probe(target: Target, acme_file: Path, tmp_path: Path) -> None:
    # archive: a window from the events themselves; --json for scripts.
    first = coldtier_cli("archive", target.url, str(acme_file), "--tenant", "acme", "--json")
    assert first.code == 0, first.err
    receipt = first.json()
    assert receipt["events"] == len(ACME_LINES)
    assert receipt["created"] is True
    assert receipt["start"] == "2024-03-01T00:00:00Z"
    (key,) = receipt["keys"]
    # Archiving the same file again stores nothing new and succeeds.
    again = coldtier_cli("archive", target.url, str(acme_file), "-t", "acme", "--json")
    assert again.code == 0, again.err
    assert again.json()["keys"] == [key]
    assert again.json()["created"] is False

    # A day of globex with an explicit window, in human mode.
    globex = tmp_path / "globex.jsonl"
    globex.write_text("\n".join(line for line in GLOBEX_LINES if "2024-03-02T" in line) + "\n")
    stored = coldtier_cli(
        "archive", target.url, str(globex), "-t", "globex", "--start", "2024-03-02", "--end", "2024-03-02"
    )
    assert stored.code == 0, stored.err
    assert "stored" in stored.out
    assert "globex/2024-03/archive.globex.2024-03-02T000000Z-2024-03-02T235959Z." in stored.out

    # ls: every tenant by default, one tenant, a window, JSON.
    listing = coldtier_cli("ls", target.url, "--json")
    assert listing.code == 0, listing.err
    assert [o["tenant_id"] for o in listing.json()] == ["acme", "globex"]
    assert listing.json()[0]["key"] == key
    assert listing.json()[0]["digest"] == key.rsplit(".", 2)[1]
    human = coldtier_cli("ls", target.url, "--tenant", "globex")
    assert human.code == 0, human.err
    assert human.out.count("\n") == 1
    assert "globex/2024-03/" in human.out
    assert "1 object," in human.err
    outside = coldtier_cli("ls", target.url, "--start", "2024-04-01", "--json")
    assert outside.code == 0
    assert outside.json() == []

    # read: one day as JSON Lines, exactly the lines that went in.
    day = coldtier_cli("read", target.url, "--tenant", "acme", "--day", "2024-03-02")
    assert day.code == 0, day.err
    expected = [json.loads(line) for line in ACME_LINES if '"timestamp":"2024-03-02T' in line]
    assert [json.loads(line) for line in day.out.splitlines()] == expected
    table = coldtier_cli("read", target.url, "-t", "acme", "--day", "2024-03-02", "--format", "table")
    assert table.code == 0, table.err
    assert table.out.splitlines()[0].startswith("TIMESTAMP (UTC)")
    assert table.out.splitlines()[-1] == f"({len(expected)} events)"
    out = tmp_path / "acme.parquet"
    as_parquet = coldtier_cli("read", target.url, "-t", "acme", "-o", str(out))
    assert as_parquet.code == 0, as_parquet.err
    read_back = pq.read_table(out)
    assert read_back.num_rows == len(ACME_LINES)
    assert read_back.column_names[-1] == "tenant_id"
    empty = coldtier_cli("read", target.url, "-t", "acme", "--start", "2025-01-01")
    assert (empty.code, empty.out) == (0, "")

    # verify and probe pass.
    verified = coldtier_cli("verify", target.url)
    assert verified.code == 0, verified.out + verified.err
    globex_day = sum("2024-03-02T" in line for line in GLOBEX_LINES)
    assert verified.out.strip().endswith(f"2 objects, {len(ACME_LINES) + globex_day} events: OK")
    probed = coldtier_cli("probe", target.url, "--json")
    assert probed.code == 0, probed.err
    assert probed.json()["ok"] is True

    # Damage the acme object: verify names it (exit 1), read refuses (exit 1).
    target.corrupt(key)
    damaged = coldtier_cli("verify", target.url)
    assert damaged.code == 1
    problems = [line for line in damaged.out.splitlines() if line.startswith("PROBLEM ")]
    assert len(problems) == 1
    assert problems[0].startswith(f"PROBLEM {key}: content digest")
    assert damaged.out.splitlines()[-1].endswith(": 1 problem")
    report = coldtier_cli("verify", target.url, "--tenant", "acme", "--json")
    assert report.code == 1
    assert report.json()["ok"] is False
    assert [p["key"] for p in report.json()["problems"]] == [key]
    only_globex = coldtier_cli("verify", target.url, "--tenant", "globex")
    assert only_globex.code == 0, only_globex.out
    refused = coldtier_cli("read", target.url, "-t", "acme", "--day", "2024-03-02")
    assert_one_line_error(refused, 1, key, "damaged")


def test_round_trips_through_jsonl_and_parquet(target: Target, acme_file: Path, tmp_path: Path) -> None:
    """What `read` writes, `archive` takes back: the same events give the same object."""
    assert coldtier_cli("archive", target.url, str(acme_file), "-t", "acme").code == 0
    original = coldtier_cli("ls", target.url, "-t", "acme", "--json").json()

    # Parquet out, then in under another prefix: byte-identical object (same key).
    out = tmp_path / "export.parquet"
    assert coldtier_cli("read", target.url, "-t", "acme", "-o", str(out)).code == 0
    copy = str(tmp_path / "copy")
    again = coldtier_cli("archive", copy, str(out), "-t", "acme", "--json")
    assert again.code == 0, again.err
    assert [k.rsplit("/", 1)[-1] for k in again.json()["keys"]] == [
        o["key"].rsplit("/", 1)[-1] for o in original
    ]

    # JSON Lines through a pipe (stdin), a day at a time, with an explicit window.
    day = coldtier_cli("read", target.url, "-t", "acme", "--day", "2024-03-03")
    window = ["--start", "2024-03-03", "--end", "2024-03-03"]
    piped = coldtier_cli("archive", copy, "-", "-t", "acme", *window, stdin=day.out.encode())
    assert piped.code == 0, piped.err
    assert "archive.acme.2024-03-03T000000Z-2024-03-03T235959Z." in piped.out
    assert coldtier_cli("read", copy, "-t", "acme").out == coldtier_cli("read", target.url, "-t", "acme").out


def test_url_from_environment(target: Target, acme_file: Path) -> None:
    env = {"COLDTIER_URL": target.url}
    assert coldtier_cli("archive", str(acme_file), "-t", "acme", env=env).code == 0
    listed = coldtier_cli("ls", "--json", env=env)
    assert listed.code == 0, listed.err
    assert len(listed.json()) == 1
    assert coldtier_cli("verify", env=env).code == 0


def test_allsource_named_objects(target: Target) -> None:
    """Files named as allsource-core names them (no digest) are listed, read and verified."""
    events = make_events("acme", 50)
    start, end = window_of(events)
    table = _validate.from_events("acme", _validate.window(start, end), events)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    name = f"archive.acme.{start:%Y-%m-%dT%H%M%SZ}-{end:%Y-%m-%dT%H%M%SZ}.parquet"
    target.put(f"acme/{start:%Y-%m}/{name}", sink.getvalue().to_pybytes())
    target.put(
        f"acme/{start:%Y-%m}/archive.acme.2024-03-05T000000Z-2024-03-05T235959Z.parquet", b"not parquet"
    )
    listed = coldtier_cli("ls", target.url, "-t", "acme", "--json")
    assert [o["digest"] for o in listed.json()] == [None, None]
    read = coldtier_cli("read", target.url, "-t", "acme", "--end", "2024-03-04")
    assert read.code == 0, read.err
    assert [json.loads(line)["id"] for line in read.out.splitlines()] == [str(e.id) for e in events]
    verified = coldtier_cli("verify", target.url)
    assert verified.code == 1
    (problem,) = [line for line in verified.out.splitlines() if line.startswith("PROBLEM")]
    assert "2024-03-05T000000Z" in problem
    assert "not readable Parquet" in problem


# ---------------------------------------------------------------------------
# Errors: one line, the right exit code, nothing written


#: (arguments, what the one-line error says, also run on S3?)  Errors that do
#: not depend on the backend run on the local one only.
ERROR_CASES = [
    (["ls", "nope://bucket"], "no coldtier backend for nope://", False),
    (["ls", "{url}", "--opt", "colour=blue"], "unknown option 'colour'", True),
    (["ls", "{url}", "--opt", "colour"], "not NAME=VALUE", False),
    (["ls", "{url}", "--opt", "workers=many"], "must be an integer", True),
    (["ls", "{url}", "--tenant", "../etc"], "invalid tenant_id", True),
    (["ls", "{url}", "--start", "yesterday"], "is not a time", False),
    (["ls", "{url}", "--start", "2024-03-02", "--end", "2024-03-01"], "is after --end", False),
    (["ls", "{url}", "--day", "2024-03-02", "--end", "2024-03-03"], "--day cannot be combined", False),
    (["read", "{url}"], "Missing option '--tenant'", False),
    (["read", "{url}", "-t", "acme", "--format", "xml"], "Invalid value for '--format'", False),
    (["verify", "{url}", "--bogus"], "No such option", False),
    (["ls"], "no archive URL", False),
    (["archive", "{url}", "-t", "acme"], "expected URL FILE", False),
    (["archive", "{url}", "{missing}", "-t", "acme"], "no such file", True),
    (["archive", "{url}", "{acme}", "-t", "globex"], "line 1: tenant_id 'acme' is not 'globex'", True),
    (["archive", "{url}", "{acme}", "-t", "acme", "--end", "2024-03-02"], "is after --end", True),
    (["archive", "{url}", "{bad}", "-t", "acme"], "line 2: not valid JSON", True),
    (
        ["archive", "{url}", "{badparquet}", "-t", "acme", "--format", "parquet"],
        "not a readable Parquet",
        True,
    ),
    (["archive", "{url}", "{wrongcols}", "-t", "acme"], "unexpected column(s) ['colour']", True),
    (["frobnicate"], "No such command", False),
]


@pytest.mark.parametrize(
    ("target", "args", "needle"),
    [("local", args, needle) for args, needle, _ in ERROR_CASES]
    + [("s3", args, needle) for args, needle, on_s3 in ERROR_CASES if on_s3],
    indirect=["target"],
)
def test_usage_and_input_errors(
    target: Target, acme_file: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(ACME_LINES[0] + "\n{oops\n")
    badparquet = tmp_path / "bad.parquet"
    badparquet.write_bytes(b"PAR1 but not really")
    wrongcols = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"colour": ["blue"]}), wrongcols)
    names = {
        "url": target.url,
        "missing": str(tmp_path / "missing.jsonl"),
        "acme": str(acme_file),
        "bad": str(bad),
        "badparquet": str(badparquet),
        "wrongcols": str(wrongcols),
    }
    result = coldtier_cli(*(a.format(**names) for a in args))
    assert_one_line_error(result, 2, needle)
    # Bad input writes nothing: the archive stays empty.
    if target.name == "local":
        assert not Path(target.url).exists() or not any(Path(target.url).rglob("*.parquet"))
    else:
        assert coldtier_cli("ls", target.url, "--json").json() == []


def test_local_errors(tmp_path: Path, acme_file: Path) -> None:
    missing = coldtier_cli("verify", str(tmp_path / "no-such-archive"))
    assert_one_line_error(missing, 2, "no such archive directory")
    userinfo = coldtier_cli("ls", "s3://someone:hunter2@bucket/x")
    assert_one_line_error(userinfo, 2, "carries credentials")
    assert "hunter2" not in userinfo.err
    # Parquet to a pipe is fine; the output file appears only when complete.
    archive = str(tmp_path / "a")
    assert coldtier_cli("archive", archive, str(acme_file), "-t", "acme").code == 0
    unwritable = coldtier_cli("read", archive, "-t", "acme", "-o", str(tmp_path / "no" / "dir" / "x.jsonl"))
    assert_one_line_error(unwritable, 2, "cannot write")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    nothing = coldtier_cli("archive", archive, str(empty), "-t", "acme", "--json")
    assert nothing.code == 0
    assert nothing.json()["events"] == 0
    assert "holds no events" in nothing.err


def test_s3_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    url = "s3://bucket/x?endpoint_url=http://127.0.0.1:9&region=us-east-1&max_attempts=1"
    result = coldtier_cli("ls", url, "--tenant", "acme")
    assert result.code == 1, result
    assert len(result.err.splitlines()) == 1
    assert "Traceback" not in result.err
    assert CREDENTIALS["secret"] not in result.err


def test_probe_reports_a_store_that_overwrites(tmp_path: Path) -> None:
    """A backend whose create-only write is not honoured: probe exits 1 with one line."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "overwriting_backend.py").write_text(
        "from coldtier.backends.local import LocalStore\n"
        "class Overwriting(LocalStore):\n"
        "    scheme = 'overwrite'\n"
        "    @classmethod\n"
        "    def from_location(cls, location):\n"
        "        return cls(location.path)\n"
        "    def put(self, key, data, *, sha256, metadata, lock=True):\n"
        "        import os\n"
        "        path = self.path(key)\n"
        "        os.makedirs(os.path.dirname(path), exist_ok=True)\n"
        "        with open(path, 'wb') as f:\n"
        "            f.write(data)\n"
        "        return True\n"
    )
    dist = plugin / "overwriting_backend-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: overwriting-backend\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(
        "[coldtier.backends]\noverwrite = overwriting_backend:Overwriting\n"
    )
    env = {"PYTHONPATH": str(plugin)}
    listed = coldtier_cli("backends", "--json", env=env)
    assert {
        "scheme": "overwrite",
        "target": "overwriting_backend:Overwriting",
        "available": True,
        "problem": None,
    } in (listed.json())
    result = coldtier_cli("probe", f"overwrite://{tmp_path / 'store'}", env=env)
    assert_one_line_error(result, 1, "accepted a second create")


def test_backends_lists_every_builtin_scheme() -> None:
    human = coldtier_cli("backends")
    assert human.code == 0, human.err
    for scheme in ("file://", "memory://", "s3://", "r2://", "gs://", "gcs://"):
        assert any(line.startswith(scheme) and line.endswith("ok") for line in human.out.splitlines()), scheme
    machine = coldtier_cli("backends", "--json")
    assert {row["scheme"]: row["target"] for row in machine.json()}["file"] == "coldtier.backends.local:LocalStore"


def test_help_and_version() -> None:
    top = coldtier_cli("--help")
    assert top.code == 0
    for command in ("archive", "backends", "ls", "probe", "read", "verify"):
        assert command in top.out
    bare = coldtier_cli()
    assert bare.code == 2
    assert "Usage:" in bare.err
    assert coldtier_cli("--version").out.strip() == f"coldtier, version {coldtier.__version__}"


def test_large_input_streams_in_parts(tmp_path: Path) -> None:
    """An input larger than one object is validated whole, then streamed part by part."""
    lines = ACME_LINES
    source = tmp_path / "events"  # no extension: JSON Lines by content
    source.write_text("\n".join(lines) + "\n")
    archive = str(tmp_path / "a")
    result = coldtier_cli(
        "archive", archive, str(source), "-t", "acme", "--opt", "object_events=400", "--json"
    )
    assert result.code == 0, result.err
    assert result.json()["events"] == len(lines)
    assert len(result.json()["keys"]) == 4
    assert coldtier_cli("verify", archive).code == 0
    back = coldtier_cli("read", archive, "-t", "acme")
    assert [json.loads(line) for line in back.out.splitlines()] == [json.loads(line) for line in lines]
    # A bad line at the very end: nothing at all is written.
    (tmp_path / "late.jsonl").write_text(
        "\n".join(lines) + "\n" + lines[0].replace('"acme"', '"other"') + "\n"
    )
    fresh = str(tmp_path / "b")
    late = coldtier_cli(
        "archive", fresh, str(tmp_path / "late.jsonl"), "-t", "acme", "--opt", "object_events=400"
    )
    assert_one_line_error(late, 2, f"line {len(lines) + 1}")
    assert not any(Path(fresh).rglob("*.parquet"))


def test_progress_bars_only_on_a_terminal(tmp_path: Path, acme_file: Path) -> None:
    archive = str(tmp_path / "a")
    assert coldtier_cli("archive", archive, str(acme_file), "-t", "acme").code == 0
    piped = coldtier_cli("verify", archive)
    assert "verifying" not in piped.err
    primary, secondary = pty.openpty()
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "coldtier.cli", "verify", archive],
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=secondary,
            env=_env(),
        ) as proc:
            os.close(secondary)
            secondary = -1
            seen = b""
            while True:
                ready, _, _ = select.select([primary], [], [], 60)
                if not ready:
                    break
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            assert proc.wait(timeout=60) == 0
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    text = seen.decode(errors="replace")
    assert "verifying" in text
    assert "1 object, 1500 events: OK" in text


def test_day_x_walkthrough(tmp_path: Path) -> None:
    """examples/day_x.py answers "what happened for acme on 2 March" and keeps working."""
    example = Path(__file__).resolve().parents[1] / "examples" / "day_x.py"
    proc = subprocess.run(
        [sys.executable, str(example), "--tenant", "globex", "--day", "2024-03-03"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    day = sum(
        '"tenant_id":"globex"' in line and "2024-03-03T" in line for line in SAMPLE.read_text().splitlines()
    )
    assert f"\n{day} events between" in proc.stdout
    assert "1 object(s) overlap the day" in proc.stdout
    assert "intact" in proc.stdout
