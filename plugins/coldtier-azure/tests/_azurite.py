"""Azurite (npm ``azurite``) as a pytest fixture, and a backdoor that speaks the SDK directly.

``azurite`` (session): ``azurite-blob`` on 127.0.0.1, an ephemeral port (read
from its first lines of output), data in a temp directory; stopped by PID at
session end (SIGTERM, a bounded wait, then SIGKILL: it has ignored SIGTERM
for over 10 s).  ``container``: a fresh container per test.  The binary is
``$COLDTIER_AZURITE``, else the repository's ``build/azurite`` (``make
azurite``), else ``azurite-blob`` on ``PATH``; missing, the tests fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import coldtier
import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

__all__ = ["ACCOUNT", "KEY", "PREFIX", "Azurite", "SDKBackdoor", "azurite", "container"]

#: Azurite's default account and its well-known key (public, documented by Microsoft).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
PREFIX = "cold/tier"
_REPO = Path(__file__).resolve().parents[3]
_LISTENING = re.compile(rb"listens on http://127\.0\.0\.1:(\d+)")


def _binary() -> str:
    for candidate in (
        os.environ.get("COLDTIER_AZURITE"),
        str(_REPO / "build/azurite/node_modules/.bin/azurite-blob"),
        shutil.which("azurite-blob"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(
        "azurite-blob not found: run `make azurite` (npm install --prefix build/azurite azurite)"
    )


class Azurite:
    """A running ``azurite-blob``; :attr:`url` is its host, :attr:`endpoint` the account's blob endpoint."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None
        self.url = ""

    @property
    def endpoint(self) -> str:
        return f"{self.url}/{ACCOUNT}"

    def start(self, timeout: float = 60.0) -> None:
        log = (self.workdir / "azurite.log").open("ab")
        self.process = subprocess.Popen(
            [
                *(_binary(), "--blobHost", "127.0.0.1", "--blobPort", "0"),
                *("--location", str(self.workdir / "data"), "--skipApiVersionCheck"),
                *("--disableTelemetry", "--silent"),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        assert self.process.stdout is not None
        port = _port(self.process.stdout, timeout)
        if port is None:
            log.close()
            self.stop()
            raise RuntimeError(f"azurite-blob did not report its port within {timeout:g} s; see {log.name}")
        self.url = f"http://127.0.0.1:{port}"
        # Keep draining its output, or a full pipe would stall it.
        self._drain = threading.Thread(target=_drain, args=(self.process.stdout, log), daemon=True)
        self._drain.start()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        if self._drain is not None:
            self._drain.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def service(self) -> BlobServiceClient:
        return BlobServiceClient(self.endpoint, credential=KEY)

    def create_container(self) -> str:
        name = f"c-{uuid.uuid4().hex[:20]}"
        self.service().create_container(name)
        return name

    def open(self, container: str, prefix: str = PREFIX, *, endpoint: str | None = None, **options: Any):
        """An archive on ``container``/``prefix`` through ``endpoint`` (default: Azurite itself)."""
        url = f"az://{container}/{prefix}".rstrip("/")
        return coldtier.open_archive(url, account_url=endpoint or self.endpoint, credential=KEY, **options)


def _port(stream: IO[bytes], timeout: float) -> int | None:
    """The port in azurite's "listens on" line, read on a thread so the wait is bounded."""
    found: list[int] = []

    def read() -> None:
        for line in iter(stream.readline, b""):
            match = _LISTENING.search(line)
            if match:
                found.append(int(match.group(1)))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0] if found else None


def _drain(stream: IO[bytes], log: IO[bytes]) -> None:
    for line in iter(stream.readline, b""):
        log.write(line)
    log.close()


class SDKBackdoor:
    """A coldtier ``Backdoor``: the container under ``prefix``, through the SDK, not coldtier."""

    def __init__(self, server: Azurite, container: str, prefix: str = PREFIX) -> None:
        self.client: ContainerClient = server.service().get_container_client(container)
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""

    def list_keys(self) -> list[str]:
        names = self.client.list_blob_names(name_starts_with=self.prefix or None)
        return sorted(n[len(self.prefix) :] for n in names)

    def objects(self) -> list[str]:
        """The archived objects: every key but coldtier's reserved ones (the ledger's receipts)."""
        return [k for k in self.list_keys() if not k.startswith("_coldtier~")]

    def get(self, key: str) -> bytes:
        return self.client.download_blob(self.prefix + key).readall()

    def put(self, key: str, data: bytes) -> None:
        self.client.upload_blob(self.prefix + key, data, overwrite=True)

    def properties(self, key: str) -> Any:
        return self.client.get_blob_client(self.prefix + key).get_blob_properties()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def container(azurite: Azurite) -> str:
    began = time.monotonic()
    while True:  # the first request may race Azurite's start-up
        try:
            return azurite.create_container()
        except Exception:
            if time.monotonic() - began > 10:
                raise
            time.sleep(0.2)
