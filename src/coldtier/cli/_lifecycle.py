"""``coldtier repack`` and ``coldtier expire``: the archive's own lifecycle (DESIGN.md §10)."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import click
from tqdm import tqdm

from ._common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    count,
    dump_json,
    interactive,
    json_option,
    mib,
    one_line,
    open_url,
    opt_option,
    parse_time,
    rfc3339,
    url_argument,
)


class _Steps:
    """A bar on stderr counting objects read, written and deleted; silent when not a terminal."""

    def __init__(self, desc: str) -> None:
        self._bar: Any = None
        if interactive():
            self._bar = tqdm(desc=desc, unit=" obj", file=sys.stderr, leave=False)

    def __call__(self, _: str) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def __enter__(self) -> _Steps:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


def _duration(value: str) -> timedelta:
    """``0``, ``90s``, ``30m``, ``1h``, ``2d``: the grace period."""
    text = value.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration (e.g. 0, 90s, 30m, 1h, 2d)") from None
    if seconds < 0:
        raise click.BadParameter(f"{value!r} is negative")
    return timedelta(seconds=seconds)


def _problems(items: Any) -> list[dict[str, str]]:
    return [{"key": p.key, "reason": one_line(p.message)} for p in items]


@click.command(
    "repack", short_help="Merge a tenant-month's small objects; delete the sources after a grace period."
)
@url_argument
@click.option("--tenant", "-t", required=True, help="The tenant whose objects to merge.")
@click.option("--month", "-m", help="Only this month (YYYY-MM; default: every month of the tenant).")
@click.option(
    "--target-bytes", type=int, default=64 * 2**20, show_default=True, help="Size to merge towards."
)
@click.option("--min-objects", type=int, default=2, show_default=True, help="Merge only this many or more.")
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="Wait after the receipt before deleting sources (0: now).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be merged and deleted; change nothing.")
@opt_option
@json_option
def repack_cmd(
    *,
    url: str | None,
    tenant: str,
    month: str | None,
    target_bytes: int,
    min_objects: int,
    grace: str,
    dry_run: bool,
    opts: tuple[str, ...],
    as_json: bool,
) -> int:
    """Merge small objects into ones near --target-bytes (create-only), then a receipt; delete the sources
    once --grace has passed since it (a later run, or --grace 0) and the merged objects verify.

    Objects under Object Lock or younger than their storage class's minimum
    duration are left as they are, each with the reason.  Exit 1 only when a
    deletion that was due is refused.
    """
    archive = open_url(url, opts)
    with _Steps("repacking") as steps:
        report = archive.repack(
            tenant,
            month,
            target_bytes=target_bytes,
            min_objects=min_objects,
            grace=_duration(grace),
            dry_run=dry_run,
            progress=steps,
        )
    if as_json:
        dump_json(
            {
                "archive": archive.description(),
                "tenant_id": tenant,
                "month": month,
                "dry_run": dry_run,
                "ok": report.ok,
                "objects_before": report.objects_before,
                "bytes_before": report.bytes_before,
                "objects_after": report.objects_after,
                "bytes_after": report.bytes_after,
                "sources": list(report.sources),
                "written": list(report.written),
                "deleted": list(report.deleted),
                "pending": list(report.pending),
                "receipts": list(report.receipts),
                "skipped": _problems(report.skipped),
                "refused": _problems(report.refused),
            }
        )
    else:
        would = "would " if dry_run else ""
        for p in report.skipped:
            click.echo(f"SKIPPED {p.key}: {one_line(p.message)}")
        for p in report.refused:
            click.echo(f"REFUSED {p.key}: {one_line(p.message)}")
        click.echo(
            f"{archive.description()} {tenant}: {would}merge {count(len(report.sources), 'object')} into "
            f"{count(len(report.written), 'object')}; {would}delete {count(len(report.deleted), 'source')}"
            + (f", {len(report.pending)} kept until the grace period has passed" if report.pending else "")
        )
        click.echo(
            f"before: {count(report.objects_before, 'object')}, {mib(report.bytes_before)}; "
            f"after: {count(report.objects_after, 'object')}, {mib(report.bytes_after)}"
        )
    return EXIT_OK if report.ok else EXIT_PROBLEMS


@click.command("expire", short_help="Delete a tenant's objects wholly before a date.")
@url_argument
@click.option("--tenant", "-t", required=True, help="The tenant whose old objects to delete.")
@click.option(
    "--before", required=True, help="Delete objects whose window ends before this time (RFC 3339 or date)."
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@opt_option
@json_option
def expire_cmd(
    *, url: str | None, tenant: str, before: str, dry_run: bool, opts: tuple[str, ...], as_json: bool
) -> int:
    """Delete the objects of --tenant whose window lies wholly before --before; never one overlapping it.

    Objects the store protects (Object Lock, a minimum storage duration) are
    refused and listed; exit 1 when there are any.
    """
    when = parse_time(before, end=False, what="--before")
    archive = open_url(url, opts)
    with _Steps("expiring") as steps:
        report = archive.expire(tenant, when, dry_run=dry_run, progress=steps)
    if as_json:
        dump_json(
            {
                "archive": archive.description(),
                "tenant_id": tenant,
                "before": rfc3339(when),
                "dry_run": dry_run,
                "ok": report.ok,
                "expired": list(report.expired),
                "bytes": report.bytes,
                "kept": report.kept,
                "refused": _problems(report.refused),
                "receipt": report.receipt,
            }
        )
    else:
        verb = "WOULD DELETE" if dry_run else "DELETED"
        for key in report.expired:
            click.echo(f"{verb} {key}")
        for p in report.refused:
            click.echo(f"REFUSED {p.key}: {one_line(p.message)}")
        would = "would delete" if dry_run else "deleted"
        click.echo(
            f"{archive.description()} {tenant}: {would} {count(len(report.expired), 'object')} "
            f"({mib(report.bytes)}) before {rfc3339(when)}; kept {count(report.kept, 'object')}"
            + (f"; refused {len(report.refused)}" if report.refused else "")
        )
    return EXIT_OK if report.ok else EXIT_PROBLEMS
