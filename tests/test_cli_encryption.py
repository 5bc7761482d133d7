"""``coldtier --encryption``, ``shred``, ``archive --new-key`` and ``keys rotate``, as subprocesses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from coldtier.jsonl import dump_event
from coldtier.testing import make_events
from tests.test_cli import ACME_LINES, assert_one_line_error, coldtier_cli

OLD = {"CT_PASS": "old passphrase for the keyring", "CT_NEW": "the new passphrase"}


def test_encrypted_archive_shred_new_key_and_rotation(tmp_path: Path) -> None:
    root, ring = tmp_path / "archive", tmp_path / "ring"
    root.mkdir()
    events = tmp_path / "acme.jsonl"
    events.write_text("\n".join(ACME_LINES) + "\n")
    keys = f"{ring.as_uri()}?passphrase_env=CT_PASS"

    stored = coldtier_cli(
        "archive", str(root), str(events), "--tenant", "acme", "--encryption", keys, "--json", env=OLD
    )
    assert stored.code == 0, stored.err
    objects = sorted(root.rglob("*.parquet"))
    assert len(objects) == 1 and objects[0].name in stored.out
    assert pq.ParquetFile(objects[0]).metadata.metadata[b"coldtier.tenant_key"] == b"acme/1"

    read = coldtier_cli("read", str(root), "--tenant", "acme", env={**OLD, "COLDTIER_ENCRYPTION": keys})
    assert read.code == 0 and len(read.out.splitlines()) == len(ACME_LINES), read.err
    no_keys = coldtier_cli("read", str(root), "--tenant", "acme")
    assert_one_line_error(no_keys, 1, "encrypted", "encryption=")
    assert coldtier_cli("verify", str(root)).code == 0  # without keys

    refused = coldtier_cli("shred", str(root), "--tenant", "acme", "--encryption", keys, env=OLD)
    assert_one_line_error(refused, 2, "--yes")
    shred = coldtier_cli("shred", str(root), "--tenant", "acme", "--encryption", keys, "--yes", env=OLD)
    assert shred.code == 0 and "shredded acme/1" in shred.out, shred.err

    gone = coldtier_cli("read", str(root), "--tenant", "acme", "--encryption", keys, env=OLD)
    assert_one_line_error(gone, 1, "tenant 'acme'", "shredded")
    verify = coldtier_cli("verify", str(root), "--encryption", keys, "--json", env=OLD)
    assert verify.code == 0, verify.out + verify.err  # shredded is not damage
    report = json.loads(verify.out)
    assert report["ok"] and [Path(k).name for k in report["shredded"]] == [objects[0].name]
    text = coldtier_cli("verify", str(root), "--encryption", keys, env=OLD)
    assert "1 shredded object" in text.out and text.out.startswith("SHREDDED ")

    again = coldtier_cli("archive", str(root), str(events), "--tenant", "acme", "--encryption", keys, env=OLD)
    assert_one_line_error(again, 1, "shredded", "--new-key")
    resumed = coldtier_cli(
        "archive", str(root), str(events), "--tenant", "acme", "--encryption", keys, "--new-key", env=OLD
    )
    # The same events have the same name, held by the shredded object: they cannot be stored again.
    assert resumed.code == 1 and "new key acme/2" in resumed.err, resumed.err
    assert "shredded key acme/1" in resumed.err and "cannot be archived again" in resumed.err.splitlines()[-1]
    fresh = tmp_path / "fresh.jsonl"
    fresh.write_bytes(b"".join(dump_event(e) for e in make_events("acme", 20, start=datetime(2025, 1, 1, tzinfo=UTC))))
    later = coldtier_cli(
        "archive", str(root), str(fresh), "--tenant", "acme", "--encryption", keys, "--new-key", env=OLD
    )
    assert later.code == 0 and "new key acme/2" not in later.err, later.err  # acme/2 exists already
    assert len(sorted(root.rglob("*.parquet"))) == 2

    rotate = coldtier_cli(
        "keys", "rotate", "--encryption", keys, "--to", f"{ring.as_uri()}?passphrase_env=CT_NEW", env=OLD
    )
    assert rotate.code == 0 and "rewrapped 1 tenant key" in rotate.out, rotate.err
    wrong = coldtier_cli("verify", str(root), "--encryption", keys, env=OLD)
    assert wrong.code == 1 and "wrong passphrase" in wrong.out
    for secret in OLD.values():
        assert secret not in " ".join(r.out + r.err for r in (stored, read, shred, gone, verify, rotate, wrong))
