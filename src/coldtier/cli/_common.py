"""What every command shares: the URL, options, times, output helpers (public API only)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import click
import orjson

import coldtier

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
MIB = 2**20

_YEAR_RE = re.compile(r"\d{4}")
_MONTH_RE = re.compile(r"\d{4}-\d\d")
_DATE_RE = re.compile(r"\d{4}-\d\d-\d\d")
# The time part of an RFC 3339 / ISO 8601 text: hours, then optional minutes,
# seconds and a fraction; what is given sets the precision --end expands.
_TIME_RE = re.compile(
    r"\d{4}-\d\d-\d\d[T ](?P<h>\d\d)(?::?(?P<m>\d\d)(?::?(?P<s>\d\d)(?:[.,](?P<f>\d+))?)?)?"
    r"(?P<tz>Z|z|[+-]\d\d(?::?\d\d)?)?"
)
_CREDENTIAL_RE = re.compile(r"option '([^']+)' is a credential")


class InputError(Exception):
    """A file or argument the user gave cannot be used (exit 2)."""


# ---------------------------------------------------------------------------
# Options shared by several commands


def url_argument(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("url", required=False, metavar="[URL]")(fn)


def opt_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--opt",
        "opts",
        multiple=True,
        metavar="NAME=VALUE",
        help=(
            "Backend option (repeatable), as in the URL's query string; credentials go here or in "
            "the environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS), never in the URL.  Command "
            "lines are visible to other users: prefer the environment."
        ),
    )(fn)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")(fn)


END_HELP = (
    "Inclusive end: RFC 3339 (no offset = UTC), a date, a month or a year, expanded to the last "
    "instant it names: --end 2024-03-02T08:06 means up to 08:06:59.999999, --end 2024-03-02 up "
    "to 23:59:59.999999."
)
START_HELP = "Inclusive start: RFC 3339 (no offset = UTC), a date, a month or a year (its first instant)."


def window_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--day",
        metavar="DATE",
        help="One UTC day (YYYY-MM-DD) or month (YYYY-MM); same as --start D --end D.",
    )(fn)
    fn = click.option("--end", metavar="TIME", help=END_HELP)(fn)
    return click.option("--start", metavar="TIME", help=START_HELP)(fn)


# ---------------------------------------------------------------------------
# Times


def parse_time(value: str, *, end: bool, what: str) -> datetime:
    """A command-line time; for an end, the last instant of the precision given.

    ``2024`` / ``2024-03`` / ``2024-03-02`` / ``2024-03-02T08`` /
    ``2024-03-02T08:06`` / ``...:07`` / ``...:07.5``: a start is the first
    instant named, an end the last (``08:06`` ends at ``08:06:59.999999``,
    ``:07.5`` at ``:07.599999``).
    """
    text = value.strip()
    try:
        if _YEAR_RE.fullmatch(text):
            first = datetime(int(text), 1, 1, tzinfo=UTC)
            following = first.replace(year=first.year + 1) if first.year < 9999 else None
            return _last_before(following) if end else first
        if _MONTH_RE.fullmatch(text):
            first = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
            if not end:
                return first
            return _last_before((first + timedelta(days=32)).replace(day=1))
        if _DATE_RE.fullmatch(text):
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + timedelta(days=1) - timedelta(microseconds=1) if end else day
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise click.BadParameter(
            f"{value!r} is not a time (RFC 3339, YYYY-MM-DD, YYYY-MM or YYYY)", param_hint=what
        ) from None
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return parsed + _precision(text) - timedelta(microseconds=1) if end else parsed


def _last_before(following: datetime | None) -> datetime:
    if following is None:
        return datetime.max.replace(tzinfo=UTC)
    return following - timedelta(microseconds=1)


def _precision(text: str) -> timedelta:
    """The unit of the last time field written in ``text`` (1 µs when it cannot tell)."""
    match = _TIME_RE.fullmatch(text)
    if match is None:
        return timedelta(microseconds=1)
    if match["f"] is not None:
        return timedelta(microseconds=10 ** max(0, 6 - len(match["f"])))
    if match["s"] is not None:
        return timedelta(seconds=1)
    if match["m"] is not None:
        return timedelta(minutes=1)
    return timedelta(hours=1)


def window(
    start: str | None, end: str | None, day: str | None = None
) -> tuple[datetime | None, datetime | None]:
    if day is not None:
        if start is not None or end is not None:
            raise click.UsageError("--day cannot be combined with --start or --end")
        start = end = day
    lo = None if start is None else parse_time(start, end=False, what="--day" if day else "--start")
    hi = None if end is None else parse_time(end, end=True, what="--day" if day else "--end")
    if lo is not None and hi is not None and lo > hi:
        raise click.UsageError(f"--start {rfc3339(lo)} is after --end {rfc3339(hi)}")
    return lo, hi


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------
# Opening the archive


def parse_opts(opts: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in opts:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--opt")
        if name in options and options[name] != value:
            raise click.BadParameter(f"{name!r} is given twice with different values", param_hint="--opt")
        options[name] = value
    return options


def open_url(url: str | None, opts: tuple[str, ...]) -> coldtier.Archive:
    """The archive a URL (or ``COLDTIER_URL``) names."""
    url = url or os.environ.get("COLDTIER_URL") or None
    if url is None:
        raise click.UsageError("no archive URL: give one or set COLDTIER_URL")
    parts = urlsplit(url) if "://" in url else None
    scheme = parts.scheme.lower() if parts is not None else ""
    if parts is not None and "@" in parts.netloc:
        # Never echo the URL: it holds a credential.
        raise InputError(
            f"the {scheme}:// URL carries credentials (user info): a command line is visible to other "
            "users; give them in the environment (e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) or as "
            "--opt name=value"
        )
    if scheme == "memory":
        raise InputError(
            "memory:// keeps nothing once the command exits, so nothing archived would survive: "
            "use a directory (or file:///path) for a local archive"
        )
    options: dict[str, Any] = dict(parse_opts(opts))
    ctx = click.get_current_context(silent=True)
    if ctx is not None and (keys := ctx.meta.get("coldtier.encryption")):  # --encryption (cli._keys_cmd)
        options.setdefault("encryption", keys)
    try:
        archive = coldtier.open_archive(url, **options)
    except coldtier.InvalidRequest as exc:
        credential = _CREDENTIAL_RE.search(str(exc))
        if credential is None:
            raise
        name = credential[1]
        raise InputError(
            f"option {name!r} is a credential and does not belong in the URL (command lines and URLs "
            f"are logged and visible): set it in the environment, or give --opt {name}=VALUE"
        ) from None
    return archive


def check_exists(archive: coldtier.Archive) -> None:
    """Refuse a local archive directory that does not exist, once a read found nothing.

    A typo in a local path would otherwise read as an empty archive, and
    `verify` would pass on nothing.  (Stores that say so raise
    ``ArchiveNotFound`` themselves.)  Called only on an empty result, after
    the arguments were checked, so that an invalid tenant is named first.
    """
    desc = archive.description()
    if desc.startswith("file://"):
        path = Path(url2pathname(urlsplit(desc).path))
        if not path.is_dir():
            raise InputError(f"{desc}: no such archive directory")


# ---------------------------------------------------------------------------
# Output


def dump_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))


def count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def mib(n: int) -> str:
    """Bytes as MiB, the one unit of every summary and bar."""
    return f"{n / MIB:.2f} MiB" if n >= MIB // 100 or n == 0 else f"{n / MIB:.4f} MiB"


def one_line(text: str) -> str:
    return " ".join(text.split())


def note(text: str) -> None:
    """One informational line on stderr (summaries, empty results)."""
    sys.stderr.write(f"coldtier: {text}\n")


def interactive() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()
