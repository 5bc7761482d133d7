"""``coldtier backends``, ``ls``, ``verify`` and ``probe``."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click

import coldtier

from ._common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    check_exists,
    count,
    dump_json,
    interactive,
    json_option,
    mib,
    one_line,
    open_url,
    opt_option,
    rfc3339,
    url_argument,
    window,
    window_options,
)
from ._progress import Bar, Timer
from ._read import say_empty


@click.command(short_help="List URL schemes and whether each works here.")
@json_option
def backends(*, as_json: bool) -> int:
    """List URL schemes, their implementations and whether they can be used here."""
    rows: list[dict[str, Any]] = []
    for scheme, target in coldtier.available_backends().items():
        try:
            coldtier.load_backend(scheme)
            problem = None
        except (coldtier.MissingDependency, coldtier.UnknownBackend) as exc:
            problem = one_line(str(exc))
        rows.append({"scheme": scheme, "target": target, "available": problem is None, "problem": problem})
    if as_json:
        dump_json(rows)
    else:
        width = max(len(r["scheme"]) for r in rows) + 3
        for r in rows:
            state = "ok" if r["available"] else f"unavailable: {r['problem']}"
            click.echo(f"{r['scheme'] + '://':<{width}} {r['target']:<36} {state}")
    return EXIT_OK


def _object_json(obj: coldtier.ArchivedObject) -> dict[str, Any]:
    return {
        "tenant_id": obj.tenant_id,
        "key": obj.key,
        "start": rfc3339(obj.start),
        "end": rfc3339(obj.end),
        "size": obj.size,
        "digest": obj.digest,
    }


@click.command("ls", short_help="List archived objects, oldest first.")
@url_argument
@click.option("--tenant", "-t", help="Only this tenant (default: every tenant).")
@window_options
@opt_option
@json_option
def ls_cmd(
    *,
    url: str | None,
    tenant: str | None,
    start: str | None,
    end: str | None,
    day: str | None,
    opts: tuple[str, ...],
    as_json: bool,
) -> int:
    """List archived objects, oldest first, optionally only those overlapping a window.

    Reads key names only: start, end, size (MiB; bytes with --json) and key of each object.
    """
    lo, hi = window(start, end, day)
    archive = open_url(url, opts)
    tenants = [tenant] if tenant is not None else archive.tenants()
    with ThreadPoolExecutor(min(8, max(1, len(tenants)))) as pool:  # one listing per tenant
        found = [obj for objs in pool.map(lambda t: archive.objects(t, lo, hi), tenants) for obj in objs]
    if not found:
        check_exists(archive)
    if as_json:
        dump_json([_object_json(o) for o in found])
    else:
        for obj in found:
            click.echo(f"{rfc3339(obj.start)}  {rfc3339(obj.end)}  {obj.size / 2**20:10.4f} MiB  {obj.key}")
    if tenant is not None and not found:
        say_empty(archive, tenant, lo, hi, "objects")
    elif not as_json:
        total = sum(o.size for o in found)
        scope = f"tenant {tenant}" if tenant is not None else count(len(tenants), "tenant")
        sys.stderr.write(
            f"{count(len(found), 'object')}, {mib(total)}, {scope}, in {archive.description()}\n"
        )
    return EXIT_OK


@click.command("verify", short_help="Re-hash every object; exit 1 on any problem.")
@url_argument
@click.option("--tenant", "-t", help="Only this tenant (default: every tenant).")
@click.option(
    "--shard",
    metavar="I/N",
    help="Only shard I of N (1 <= I <= N), split by a hash of each key: shards are disjoint, "
    "together they are every object, and an object keeps its shard as the archive grows.",
)
@click.option(
    "--state",
    "state",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Record objects verified without a problem in FILE, and skip those a previous run "
    "verified unchanged (same key and size).  One file per shard.",
)
@click.option(
    "--recheck-after",
    metavar="DAYS",
    type=float,
    help="With --state: check again objects last verified more than DAYS ago.",
)
@click.option("--sample", metavar="P", type=float, help="Check a random share P (0 < P <= 1) of the objects.")
@click.option(
    "--seed",
    metavar="N",
    type=int,
    help="With --sample: the same N draws the same objects (default: a new draw).",
)
@opt_option
@json_option
def verify_cmd(
    *,
    url: str | None,
    tenant: str | None,
    shard: str | None,
    state: str | None,
    recheck_after: float | None,
    sample: float | None,
    seed: int | None,
    opts: tuple[str, ...],
    as_json: bool,
) -> int:
    """Re-read and re-hash every object; exit 1 and print one line per damaged object.

    A scrub too long for one run is spread over machines with --shard and over
    days with --state (and --recheck-after) or --sample.
    """
    archive = open_url(url, opts)
    show = interactive()
    timer = Timer(enabled=show)
    seen = [0]

    def progress(done: int, total: int) -> None:
        seen[0] = done
        bar(done, total)

    with Bar("verifying", enabled=show) as bar:
        report = archive.verify(
            tenant,
            progress=progress,
            shard=shard,
            sample=sample,
            state=state,
            recheck_after=recheck_after,
            seed=seed,
        )
    if report.objects == 0 and report.skipped == 0:
        check_exists(archive)
    timer.done("verified", seen[0])
    # One line per damaged object, its problems joined, in report order.
    damaged: dict[str, list[str]] = {}
    for problem in report.problems:
        damaged.setdefault(problem.key, []).append(one_line(problem.message))
    if as_json:
        dump_json(
            {
                "archive": archive.description(),
                "tenant_id": tenant,
                "ok": report.ok,
                "objects": report.objects,
                "events": report.events,
                "skipped": report.skipped,
                "shard": shard,
                "shredded": list(report.shredded),
                "damaged": [{"key": key, "problems": messages} for key, messages in damaged.items()],
                "problems": [{"key": p.key, "message": one_line(p.message)} for p in report.problems],
                "unrecorded": list(report.unrecorded),
            }
        )
    else:
        for key, messages in damaged.items():
            click.echo(f"PROBLEM {key}: {'; '.join(messages)}")
        for key in report.shredded:
            click.echo(f"SHREDDED {key}")
        counts = f"{count(report.objects, 'object')}, {count(report.events, 'event')}"
        if report.skipped:
            counts += f" ({count(report.skipped, 'object')} skipped)"
        if shard is not None:
            counts = f"shard {shard}: {counts}"
        if report.shredded:  # unreadable by design, not damage: bytes, footer and schema were checked
            counts += f", {count(len(report.shredded), 'shredded object')}"
        if report.ok:
            click.echo(f"{archive.description()}: {counts}: OK")
        else:
            damage = f"{count(len(damaged), 'damaged object')}: {count(len(report.problems), 'problem')}"
            click.echo(f"{archive.description()}: {counts}, {damage}")
        if report.unrecorded:  # not damage: format 1, allsource-core files, archived before the ledger
            click.echo(f"{count(len(report.unrecorded), 'object')} unrecorded in the ledger (not damage)")
    if report.objects == 0 and report.skipped == 0 and shard is None and sample is None:
        if tenant is not None:
            say_empty(archive, tenant, None, None, "objects")
        else:
            sys.stderr.write(f"coldtier: warning: no objects found in {archive.description()}\n")
    return EXIT_OK if report.ok else EXIT_PROBLEMS


@click.command("probe", short_help="Prove the store refuses to overwrite.")
@url_argument
@opt_option
@json_option
def probe_cmd(*, url: str | None, opts: tuple[str, ...], as_json: bool) -> int:
    """Prove the store refuses to overwrite (writes and removes a canary object).

    Exit 1 when the store accepted a second create of the same object.
    """
    archive = open_url(url, opts)
    archive.probe()
    if as_json:
        dump_json({"archive": archive.description(), "ok": True})
    else:
        click.echo(f"{archive.description()}: create-only writes are honoured")
    return EXIT_OK
