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
    assert {row["scheme"]: row["target"] for row in machine.json()}[
        "file"
    ] == "coldtier.backends.local:LocalStore"


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


def _run_in_pty(*args: str) -> tuple[int, str]:
    """Run the command with stdout and stderr on a terminal; its exit code and what it showed."""
    primary, secondary = pty.openpty()
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "coldtier.cli", *args],
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
            code = proc.wait(timeout=60)
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    return code, seen.decode(errors="replace")


def test_progress_bars_only_on_a_terminal(tmp_path: Path, acme_file: Path) -> None:
    archive = str(tmp_path / "a")
    assert coldtier_cli("archive", archive, str(acme_file), "-t", "acme").code == 0
    piped = coldtier_cli("verify", archive)
    assert "verifying" not in piped.err
    code, text = _run_in_pty("verify", archive)
    assert code == 0
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


# ---------------------------------------------------------------------------
# The newcomer's and operator's path (issue 19) and the public-API move (issue 10)


def test_archive_without_tenant_splits_per_tenant_and_day(tmp_path: Path) -> None:
    """The shipped sample (two tenants) archives as is: one batch per tenant and UTC day."""
    archive = str(tmp_path / "a")
    human = coldtier_cli("archive", archive, str(SAMPLE))
    assert human.code == 0, human.err
    assert human.out.startswith("no --tenant: archived per tenant and UTC day")
    assert "globex/2024-03/archive.globex.2024-03-03T000000Z-2024-03-03T235959Z." in human.out
    again = coldtier_cli("archive", archive, str(SAMPLE), "--json")
    assert again.code == 0, again.err
    report = again.json()
    assert report["tenant_id"] is None
    assert report["events"] == len(ACME_LINES) + len(GLOBEX_LINES)
    assert report["created"] is False
    days = {(b["tenant_id"], b["start"][:10]) for b in report["batches"]}
    expected = {
        (json.loads(line)["tenant_id"], json.loads(line)["timestamp"][:10])
        for line in SAMPLE.read_text().splitlines()
    }
    assert days == expected
    assert all(b["end"].endswith("T23:59:59.999999Z") for b in report["batches"])
    assert [o["tenant_id"] for o in coldtier_cli("ls", archive, "--json").json()].count("acme") == len(
        [d for d in expected if d[0] == "acme"]
    )
    back = coldtier_cli("read", archive, "-t", "globex")
    assert [json.loads(line) for line in back.out.splitlines()] == [json.loads(line) for line in GLOBEX_LINES]
    # The same objects as examples/quickstart.py stores (same tenants, days, keys).
    quick = tmp_path / "quick"
    example = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
    proc = subprocess.run(
        [sys.executable, str(example), str(quick)], capture_output=True, env=_env(), timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    ours = sorted(p.relative_to(archive).as_posix() for p in Path(archive).rglob("*.parquet"))
    theirs = sorted(p.relative_to(quick).as_posix() for p in quick.rglob("*.parquet"))
    assert ours == theirs
    # A line without tenant_id needs --tenant.
    anonymous = tmp_path / "anonymous.jsonl"
    anonymous.write_text(ACME_LINES[0].replace('"tenant_id":"acme",', "") + "\n")
    refused = coldtier_cli("archive", str(tmp_path / "b"), str(anonymous))
    assert_one_line_error(refused, 2, "line 1", "no tenant_id")
    assert coldtier_cli("archive", str(tmp_path / "b"), str(anonymous), "-t", "acme").code == 0


def test_event_id_is_a_synonym_of_id(tmp_path: Path, acme_file: Path) -> None:
    """JSON Lines and Parquet take the id as `id` or `event_id`; output stays `id`."""
    archive = str(tmp_path / "a")
    renamed = tmp_path / "renamed.jsonl"
    renamed.write_text(acme_file.read_text().replace('{"id":', '{"event_id":'))
    first = coldtier_cli("archive", archive, str(renamed), "-t", "acme", "--json")
    assert first.code == 0, first.err
    same = coldtier_cli("archive", archive, str(acme_file), "-t", "acme", "--json")
    assert same.json()["keys"] == first.json()["keys"]
    assert same.json()["created"] is False
    both = tmp_path / "both.jsonl"
    line = json.loads(ACME_LINES[0])
    both.write_text(json.dumps({**line, "event_id": line["id"]}) + "\n")
    assert_one_line_error(coldtier_cli("archive", archive, str(both), "-t", "acme"), 2, "line 1", "not both")
    # Parquet with the Event spelling `id`.
    out = tmp_path / "export.parquet"
    assert coldtier_cli("read", archive, "-t", "acme", "-o", str(out)).code == 0
    table = pq.read_table(out)
    pq.write_table(table.rename_columns(["id", *table.column_names[1:]]), tmp_path / "ids.parquet")
    again = coldtier_cli("archive", archive, str(tmp_path / "ids.parquet"), "-t", "acme", "--json")
    assert again.code == 0, again.err
    assert again.json()["keys"] == first.json()["keys"]


def test_archive_reports_refused_events_by_line(tmp_path: Path) -> None:
    """What archive() refuses (not a UUID, a repeated id) is named by the input's line."""
    lines = ACME_LINES[:10]
    bad_id = tmp_path / "bad-id.jsonl"
    bad_id.write_text(
        "\n".join([*lines[:6], lines[6].replace(json.loads(lines[6])["id"], "nope"), *lines[7:]])
    )
    result = coldtier_cli("archive", str(tmp_path / "a"), str(bad_id), "-t", "acme")
    assert_one_line_error(result, 2, "line 7", "not a UUID")
    repeated = tmp_path / "repeated.jsonl"
    repeated.write_text("\n".join([*lines, lines[3]]) + "\n")
    result = coldtier_cli("archive", str(tmp_path / "a"), str(repeated), "-t", "acme")
    assert_one_line_error(result, 2, "repeats the id")
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").rglob("*.parquet"))


def test_large_input_streams_after_checking_every_line(tmp_path: Path) -> None:
    """Over COLDTIER_HOLD_MIB an input is checked line by line, then streamed part by part."""
    source = tmp_path / "acme.jsonl"
    source.write_text("\n".join(ACME_LINES) + "\n")
    archive = str(tmp_path / "a")
    env = {"COLDTIER_HOLD_MIB": "0.01"}
    small = ["--opt", "object_events=400", "--json"]
    result = coldtier_cli("archive", archive, str(source), "-t", "acme", *small, env=env)
    assert result.code == 0, result.err
    assert result.json()["events"] == len(ACME_LINES)
    assert len(result.json()["keys"]) == 4
    back = coldtier_cli("read", archive, "-t", "acme")
    assert [json.loads(line) for line in back.out.splitlines()] == [json.loads(line) for line in ACME_LINES]
    assert coldtier_cli("verify", archive).code == 0
    late = tmp_path / "late.jsonl"
    late.write_text("\n".join(ACME_LINES) + "\n" + ACME_LINES[0].replace('"acme"', '"other"') + "\n")
    fresh = str(tmp_path / "b")
    refused = coldtier_cli("archive", fresh, str(late), "-t", "acme", "--opt", "object_events=400", env=env)
    assert_one_line_error(refused, 2, f"line {len(ACME_LINES) + 1}")
    assert not any(Path(fresh).rglob("*.parquet"))
    too_big = coldtier_cli("archive", fresh, str(SAMPLE), env=env)
    assert_one_line_error(too_big, 2, "give --tenant")


def test_a_tenant_without_objects_says_so(target: Target, acme_file: Path) -> None:
    assert coldtier_cli("archive", target.url, str(acme_file), "-t", "acme").code == 0
    for args in (["read", "-t", "nobody"], ["ls", "-t", "nobody"], ["verify", "-t", "nobody"]):
        result = coldtier_cli(args[0], target.url, *args[1:])
        assert result.code == 0, result.err
        what = "events" if args[0] == "read" else "objects"
        assert f"0 {what} of nobody (no objects for that tenant" in result.err, result.err
        if args[0] != "verify":
            assert result.out == ""
    outside = coldtier_cli("read", target.url, "-t", "acme", "--start", "2025-01-01")
    assert (outside.code, outside.out) == (0, "")
    assert "0 events of acme between 2025-01-01T00:00:00Z and the end" in outside.err


def test_missing_local_root_is_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-archive")
    for args in (["ls"], ["ls", "-t", "acme"], ["verify"], ["read", "-t", "acme"]):
        result = coldtier_cli(args[0], missing, *args[1:])
        assert_one_line_error(result, 2, "no such archive directory")
    assert not Path(missing).exists()


def test_read_into_a_closed_pipe_exits_0(tmp_path: Path, acme_file: Path) -> None:
    """`coldtier read ... | head -1` is a success, as for any Unix filter."""
    archive = str(tmp_path / "a")
    assert coldtier_cli("archive", archive, str(acme_file), "-t", "acme").code == 0
    for fmt in ("jsonl", "table"):
        proc = subprocess.run(
            f"{sys.executable} -m coldtier.cli read {archive} -t acme --format {fmt} | head -1; "
            'echo "exit=${PIPESTATUS[0]}" >&2',
            shell=True,
            executable="/bin/bash",
            capture_output=True,
            env=_env(),
            timeout=120,
            check=False,
        )
        assert proc.stdout.decode().count("\n") == 1
        assert proc.stderr.decode() == "exit=0\n", proc.stderr


def test_output_format_by_extension_or_flag(tmp_path: Path, acme_file: Path) -> None:
    archive = str(tmp_path / "a")
    assert coldtier_cli("archive", archive, str(acme_file), "-t", "acme").code == 0
    csv = tmp_path / "x.csv"
    refused = coldtier_cli("read", archive, "-t", "acme", "-o", str(csv))
    assert_one_line_error(refused, 2, "cannot tell the format", "--format")
    assert not csv.exists()
    forced = coldtier_cli("read", archive, "-t", "acme", "-o", str(csv), "--format", "jsonl")
    assert forced.code == 0, forced.err
    assert len(csv.read_text().splitlines()) == len(ACME_LINES)
    ndjson = tmp_path / "x.ndjson"
    assert coldtier_cli("read", archive, "-t", "acme", "-o", str(ndjson)).code == 0
    assert ndjson.read_text() == csv.read_text()


def test_memory_url_is_refused(tmp_path: Path, acme_file: Path) -> None:
    for args in (["archive", "memory://x", str(acme_file), "-t", "acme"], ["ls", "memory://x"]):
        assert_one_line_error(coldtier_cli(*args), 2, "memory://", "survive")


def test_credentials_in_the_url_are_refused_with_cli_wording() -> None:
    userinfo = coldtier_cli("ls", "s3://someone:hunter2@bucket/x")
    assert_one_line_error(userinfo, 2, "carries credentials", "--opt", "environment")
    assert "hunter2" not in userinfo.err
    query = coldtier_cli("ls", "s3://bucket/x?secret=hunter2")
    assert_one_line_error(query, 2, "'secret' is a credential", "--opt secret=", "environment")
    assert "hunter2" not in query.err
    assert "keyword" not in query.err


def test_end_expands_to_the_precision_given(tmp_path: Path, acme_file: Path) -> None:
    archive = str(tmp_path / "a")
    assert coldtier_cli("archive", archive, str(acme_file), "-t", "acme").code == 0
    minute = coldtier_cli(
        "read", archive, "-t", "acme", "--start", "2024-03-02T08:06", "--end", "2024-03-02T08:06"
    )
    assert minute.code == 0, minute.err
    stamps = [json.loads(line)["timestamp"] for line in minute.out.splitlines()]
    expected = [
        json.loads(line)["timestamp"]
        for line in ACME_LINES
        if json.loads(line)["timestamp"].startswith("2024-03-02T08:06")
    ]
    assert stamps == expected
    assert expected
    hour = coldtier_cli("read", archive, "-t", "acme", "--start", "2024-03-02T08", "--end", "2024-03-02T08")
    assert [json.loads(line)["timestamp"][:13] for line in hour.out.splitlines()] == ["2024-03-02T08"] * sum(
        '"timestamp":"2024-03-02T08:' in line for line in ACME_LINES
    )
    help_text = coldtier_cli("read", "--help").out
    assert "08:06:59.999999" in " ".join(help_text.split())


def test_end_parsing_per_precision() -> None:
    from datetime import UTC, datetime

    from coldtier.cli._common import parse_time

    def end(text: str) -> str:
        return parse_time(text, end=True, what="--end").isoformat()

    assert end("2024") == "2024-12-31T23:59:59.999999+00:00"
    assert end("2024-02") == "2024-02-29T23:59:59.999999+00:00"
    assert end("2024-03-02") == "2024-03-02T23:59:59.999999+00:00"
    assert end("2024-03-02T08") == "2024-03-02T08:59:59.999999+00:00"
    assert end("2024-03-02T08:06") == "2024-03-02T08:06:59.999999+00:00"
    assert end("2024-03-02T08:06:07") == "2024-03-02T08:06:07.999999+00:00"
    assert end("2024-03-02T08:06:07.5") == "2024-03-02T08:06:07.599999+00:00"
    assert end("2024-03-02T08:06:07.123456") == "2024-03-02T08:06:07.123456+00:00"
    assert end("2024-03-02T10:06+02:00") == "2024-03-02T08:06:59.999999+00:00"
    assert parse_time("2024-03-02T08:06", end=False, what="--start") == datetime(2024, 3, 2, 8, 6, tzinfo=UTC)


def test_verify_prints_one_line_per_damaged_object(tmp_path: Path, acme_file: Path) -> None:
    archive = tmp_path / "a"
    stored = coldtier_cli("archive", str(archive), str(acme_file), "-t", "acme", "--json")
    (key,) = stored.json()["keys"]
    path = archive / key
    path.write_bytes(path.read_bytes()[:200])  # truncated: unreadable, so its digest cannot be checked
    human = coldtier_cli("verify", str(archive))
    assert human.code == 1
    problems = [line for line in human.out.splitlines() if line.startswith("PROBLEM ")]
    assert len(problems) == 1, human.out
    assert problems[0].startswith(f"PROBLEM {key}: content digest")
    assert "not readable Parquet" in problems[0]
    assert human.out.splitlines()[-1].endswith("1 object, 0 events, 1 damaged object: 1 problem")
    machine = coldtier_cli("verify", str(archive), "--json").json()
    assert [d["key"] for d in machine["damaged"]] == [key]
    assert len(machine["damaged"][0]["problems"]) == 1


def test_verify_reports_a_planted_symlink_and_checks_the_rest(tmp_path: Path, acme_file: Path) -> None:
    archive = tmp_path / "a"
    (acme,) = coldtier_cli("archive", str(archive), str(acme_file), "-t", "acme", "--json").json()["keys"]
    beta_file = tmp_path / "beta.jsonl"
    beta_file.write_text(acme_file.read_text().replace('"acme"', '"beta"'))
    assert coldtier_cli("archive", str(archive), str(beta_file), "-t", "beta").code == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    (archive / "evil").symlink_to(outside)  # beside the tenants, on a shared volume
    human = coldtier_cli("verify", str(archive))
    assert human.code == 1, (human.out, human.err)
    problems = [line for line in human.out.splitlines() if line.startswith("PROBLEM ")]
    assert problems == ["PROBLEM evil: a symbolic link (not followed), where a tenant directory should be"]
    events = len(acme_file.read_text().splitlines())
    assert human.out.splitlines()[-1].endswith(f"2 objects, {2 * events} events, 1 damaged object: 1 problem")
    (archive / acme).unlink()
    os.mkfifo(archive / acme)  # a FIFO under an object's name: never opened, no hang
    machine = coldtier_cli("verify", str(archive), "--json")
    assert machine.code == 1
    found = machine.json()
    assert [(p["key"], p["message"]) for p in found["problems"]] == [
        (acme, "a FIFO (not opened), where an object should be"),
        ("evil", "a symbolic link (not followed), where a tenant directory should be"),
    ]
    assert (found["objects"], found["events"], found["ok"]) == (1, events, False)


def test_progress_steps_and_final_line(tmp_path: Path, acme_file: Path) -> None:
    archive = str(tmp_path / "a")
    code, text = _run_in_pty("archive", archive, str(acme_file), "-t", "acme")
    assert code == 0, text
    assert "step 1/2 checking" in text
    assert "step 2/2 storing" in text
    final = [line for line in text.splitlines() if line.startswith("coldtier: archived ")]
    assert len(final) == 1, text
    assert " MiB in " in final[0]
    assert final[0].endswith("MiB/s)")
    assert " bytes" not in text
    code, text = _run_in_pty("verify", archive)
    assert code == 0
    assert "coldtier: verified: " in text
    assert "MiB/s" in text


def test_help_says_which_commands_take_json() -> None:
    top = " ".join(coldtier_cli("--help").out.split())
    assert "--json (archive, backends, ls, verify, probe)" in top
    assert "read writes JSON Lines" in top
    for command in ("archive", "backends", "ls", "verify", "probe"):
        assert "--json" in coldtier_cli(command, "--help").out, command
    assert "--json" not in coldtier_cli("read", "--help").out.replace("no --json", "")


UNREACHABLE = {
    "s3": "s3://bucket/x?endpoint_url=http://127.0.0.1:{port}&region=us-east-1&max_attempts=1&timeout=2",
    "r2": "r2://bucket/x?endpoint_url=http://127.0.0.1:{port}&max_attempts=1&timeout=2",
    "gs": "gs://bucket/x?endpoint_url=http://127.0.0.1:{port}&timeout=1",
}


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("scheme", ["s3", "r2", "gs"])
def test_unreachable_endpoint_is_one_line(scheme: str) -> None:
    """Whatever the libraries log (gcsfs: a 51-line traceback), a failure is one line on stderr."""
    url = UNREACHABLE[scheme].format(port=_closed_port())
    # gcsfs retries a refused connection for ~40 s whatever `timeout` says: one command there.
    commands = (
        [["ls"]] if scheme == "gs" else [["ls"], ["ls", "-t", "acme"], ["verify"], ["read", "-t", "acme"]]
    )
    for args in commands:
        result = coldtier_cli(args[0], url, *args[1:])
        assert result.code in (1, 2), result
        assert_one_line_error(result, result.code)
        assert CREDENTIALS["secret"] not in result.err
    if scheme == "s3":
        # -v lets log records through (here botocore's, with -vvv); the error is still the last line.
        loud = coldtier_cli("-vvv", "ls", url, "--log-format", "json")
        assert loud.code == 1
        lines = loud.err.splitlines()
        assert len(lines) > 1
        assert lines[-1].startswith("coldtier: error: ")
        assert all(json.loads(line)["level"] for line in lines[:-1])
        assert CREDENTIALS["secret"] not in loud.err


# ---------------------------------------------------------------------------
# coldtier.jsonl, the public JSON Lines reader and writer


def test_jsonl_module_round_trip() -> None:
    from coldtier import jsonl

    events = list(jsonl.load_events(ACME_LINES[:5]))
    assert [json.loads(jsonl.dump_event(e)) for e in events] == [json.loads(line) for line in ACME_LINES[:5]]
    renamed = [line.replace('{"id":', '{"event_id":') for line in ACME_LINES[:5]]
    assert list(jsonl.load_events(renamed, "acme")) == events
    (table,) = jsonl.load_tables(ACME_LINES[:5], line_numbers=True)
    assert table.column_names == [*jsonl.TABLE_SCHEMA.names, "line"]
    assert table.column("line").to_pylist() == [1, 2, 3, 4, 5]
    assert b"".join(jsonl.dump_table(table)) == b"".join(jsonl.dump_event(e) for e in events)
    with pytest.raises(coldtier.InvalidRequest, match=r"input line 2: tenant_id 'acme' is not 'globex'"):
        list(jsonl.load_tables(["", ACME_LINES[0]], "globex"))
    with pytest.raises(coldtier.InvalidRequest, match=r"input line 1: .* has no UTC offset"):
        list(jsonl.load_events([ACME_LINES[0].replace(':00Z"', ':00"')]))
    with pytest.raises(coldtier.InvalidRequest, match=r"x line 1: missing field\(s\) \['id'\]"):
        list(
            jsonl.load_events(
                [json.dumps({k: v for k, v in json.loads(ACME_LINES[0]).items() if k != "id"})], name="x"
            )
        )


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_archive_checks_each_event_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """JSON Lines text is parsed once (by coldtier.jsonl) and not parsed again by archive();
    ids are checked once either way; the stored objects are the same for both inputs."""
    from collections import Counter

    from coldtier import jsonl
    from coldtier._validate import arrow
    from coldtier.cli._main import run

    checked: Counter[str] = Counter()
    real_json, real_ids = arrow._check_json, arrow.check_ids

    def count_json(table: pa.Table, name: str) -> None:
        checked[name] += table.num_rows
        real_json(table, name)

    def count_ids(table: pa.Table) -> pa.Table | None:
        checked["event_id"] += table.num_rows
        return real_ids(table)

    monkeypatch.setattr(arrow, "_check_json", count_json)
    monkeypatch.setattr(arrow, "check_ids", count_ids)
    source = tmp_path / "acme.jsonl"
    source.write_text("\n".join(ACME_LINES) + "\n")
    if kind == "parquet":
        table = pa.concat_tables(jsonl.load_tables(ACME_LINES, "acme")).drop_columns(["tenant_id"])
        source = tmp_path / "acme.parquet"
        pq.write_table(table, source)
    root = tmp_path / kind
    root.mkdir()
    assert run(["archive", str(root), str(source), "--tenant", "acme", "--json"]) == 0
    expected_json = 0 if kind == "jsonl" else len(ACME_LINES)
    assert (
        checked
        == Counter({"event_id": len(ACME_LINES), "payload": expected_json, "metadata": expected_json})
        - Counter()
    )
    keys = sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))
    other = tmp_path / "plain"
    other.mkdir()
    table = pa.concat_tables(jsonl.load_tables(ACME_LINES, "acme")).drop_columns(["tenant_id"])
    ts = table.column("timestamp")
    start, end = ts[0].as_py(), ts[len(ts) - 1].as_py()
    coldtier.open_archive(str(other)).archive("acme", min(start, end), max(start, end), table)
    assert keys and keys == sorted(str(p.relative_to(other)) for p in other.rglob("*.parquet"))
