"""The plugin as a third party ships it: the public seam only, entry points, real processes."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import uuid
from importlib.metadata import entry_points
from pathlib import Path

from coldtier.testing import make_events

from _azurite import KEY, PREFIX, Azurite, SDKBackdoor

SRC = Path(__file__).resolve().parents[1] / "src" / "coldtier_azure"
COLDTIER = str(Path(sys.executable).with_name("coldtier"))
RACERS = 8


def _connection_string(azurite: Azurite) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
        f"BlobEndpoint={azurite.endpoint};"
    )


def test_plugin_imports_nothing_private_of_coldtier() -> None:
    files = sorted(SRC.glob("*.py"))
    assert len(files) >= 2
    for path in files:
        text = path.read_text()
        assert not re.search(r"coldtier\._|(from|import) coldtier\.backends|from coldtier import _", text), (
            path
        )
        for node in ast.walk(ast.parse(text)):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [f"{node.module}.{a.name}" for a in node.names]
                if isinstance(node, ast.ImportFrom) and node.module
                else []
            )
            for name in names:
                if name.startswith("coldtier"):
                    assert name.split(".")[1] in ("store", "MissingDependency"), (path, name)


def test_declared_only_through_entry_points() -> None:
    points = {ep.name: ep for ep in entry_points(group="coldtier.backends") if ep.name in ("az", "azure")}
    assert {name: ep.value for name, ep in points.items()} == {
        "az": "coldtier_azure:AzureStore",
        "azure": "coldtier_azure:AzureStore",
    }
    assert {ep.dist.name for ep in points.values() if ep.dist is not None} == {"coldtier-azure"}


def test_cli_backends_lists_each_scheme_once() -> None:
    out = subprocess.run(
        [COLDTIER, "backends", "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    rows = json.loads(out.stdout)
    mine = [r for r in rows if r["scheme"] in ("az", "azure")]
    assert sorted(r["scheme"] for r in mine) == ["az", "azure"]
    assert all(r["available"] and r["target"] == "coldtier_azure:AzureStore" for r in mine)


def test_cli_probe_passes_on_azurite(azurite: Azurite, container: str) -> None:
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": _connection_string(azurite)}
    url = f"az://{container}/{PREFIX}"
    out = subprocess.run([COLDTIER, "probe", url], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{url}: create-only writes are honoured"
    assert KEY not in out.stdout + out.stderr
    assert SDKBackdoor(azurite, container).objects() == []


_WRITER = """
import json, os, sys, time
import coldtier
from coldtier.testing import make_events, window_of
events = make_events("acme", 300, seed=7)
archive = coldtier.open_archive(sys.argv[1])
print("ready", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.005)
receipt = archive.archive("acme", *window_of(events), events)
print(json.dumps({"keys": list(receipt.keys), "created": receipt.created}), flush=True)
"""


def test_eight_processes_archiving_the_same_batch_settle_to_one_object(
    azurite: Azurite, container: str, tmp_path: Path
) -> None:
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": _connection_string(azurite)}
    go = tmp_path / f"go-{uuid.uuid4().hex}"
    url = f"az://{container}/{PREFIX}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, str(go)], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(RACERS)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        go.touch()  # release every writer at once
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0
            results.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    keys = {tuple(r["keys"]) for r in results}
    assert len(keys) == 1 and SDKBackdoor(azurite, container).objects() == list(keys.pop())
    assert sum(r["created"] for r in results) == 1  # exactly one process created it
    ids = {str(e.id) for e in make_events("acme", 300, seed=7)}
    got = azurite.open(container).read("acme").column("event_id").to_pylist()
    assert len(got) == len(set(got)) == 300 and set(got) == ids
