"""The command group, logging, and the one-line error for every failure."""

from __future__ import annotations

import errno
import logging
import os
import select
import sys
import threading
import traceback
from datetime import UTC, datetime
from typing import Any, NoReturn

import click
import orjson

import coldtier

from ._archive_cmd import archive_cmd
from ._commands import backends, ls_cmd, probe_cmd, verify_cmd
from ._common import EXIT_PROBLEMS, EXIT_USAGE, InputError, one_line
from ._keys_cmd import encryption_param, keys_cmd, new_key_param, shred_cmd
from ._lifecycle import expire_cmd, repack_cmd
from ._read import read_cmd

_EXAMPLES = """\b
Examples:
  coldtier archive s3://bucket/cold events.jsonl --tenant acme
  coldtier archive ./archive examples/data/sample-events.jsonl   # per tenant and day
  coldtier ls s3://bucket/cold --tenant acme --day 2024-03-02
  coldtier read s3://bucket/cold --tenant acme --day 2024-03-02 --format table
  coldtier read s3://bucket/cold --tenant acme --start 2024-03 --end 2024-03 -o march.parquet
  coldtier verify s3://bucket/cold
  coldtier archive ./archive events.jsonl --encryption file:///srv/keyring
  coldtier shred ./archive --tenant acme --encryption file:///srv/keyring --yes
"""

#: Errors that mean "what you asked for cannot be done as asked" (exit 2).
_USAGE_ERRORS = (
    coldtier.InvalidRequest,
    coldtier.UnknownBackend,
    coldtier.MissingDependency,
    coldtier.ArchiveNotFound,
    InputError,
)


# ---------------------------------------------------------------------------
# Logging: nothing from any library unless -v


class _Logging:
    """``-v`` / ``--log-format`` from the group and the command, applied as they are parsed."""

    verbosity = 0
    fmt = "text"

    @classmethod
    def reset(cls) -> None:
        cls.verbosity, cls.fmt = 0, "text"
        cls.apply()

    @classmethod
    def apply(cls) -> None:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "coldtier_cli", False)]:
            root.removeHandler(handler)
        logging.captureWarnings(True)  # warnings are log records too: hidden unless -v
        if cls.verbosity == 0:
            # Libraries log tracebacks (gcsfs on an unreachable endpoint) and
            # some attach their own handlers: silence them all, whatever they do.
            logging.disable(logging.CRITICAL)
            sys.unraisablehook = lambda _: None
            threading.excepthook = lambda _: None
            return
        logging.disable(logging.NOTSET)
        sys.unraisablehook = sys.__unraisablehook__
        threading.excepthook = threading.__excepthook__
        handler = logging.StreamHandler(sys.stderr)
        handler.coldtier_cli = True  # type: ignore[attr-defined]
        handler.setFormatter(_JsonFormatter() if cls.fmt == "json" else _TEXT)
        root.addHandler(handler)
        levels = {1: (logging.WARNING, logging.INFO), 2: (logging.INFO, logging.DEBUG)}
        others, ours = levels.get(cls.verbosity, (logging.DEBUG, logging.DEBUG))
        root.setLevel(others)
        logging.getLogger("coldtier").setLevel(ours)


_TEXT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


#: What every LogRecord has; anything else on a record came in ``extra=`` (coldtier's fields).
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRS and name not in line and not name.startswith("_"):
                line[name] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def _on_verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        _Logging.verbosity += value
        _Logging.apply()


def _on_log_format(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _Logging.fmt = value
        _Logging.apply()


def _logging_params() -> list[click.Parameter]:
    return [
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_on_verbose,
            help="Show log records on stderr: -v coldtier's INFO and libraries' warnings, -vv DEBUG.",
        ),
        click.Option(
            ["--log-format"],
            type=click.Choice(["text", "json"]),
            expose_value=False,
            callback=_on_log_format,
            help="Log records as text (default) or one JSON object per line.",
        ),
    ]


# ---------------------------------------------------------------------------
# The group


class _BrokenPipe(Exception):
    """EPIPE, kept from click (which would turn it into a silent exit 1)."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise _BrokenPipe(f"{type(exc).__name__}: {exc}") from exc
            raise


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=_EXAMPLES,
    params=_logging_params(),
)
@click.version_option(coldtier.__version__, prog_name="coldtier")
def cli() -> None:
    """Archive events create-only, read them back, and prove the archive intact.

    URL selects the backend: a local path or file:///path, s3://bucket/prefix,
    r2://bucket/prefix, gs://bucket/prefix (memory:// is refused: nothing in
    it survives the command).  It may be left out when COLDTIER_URL is set.
    Credentials never go in the URL: use the environment or --opt.

    Exit codes: 0 ok, 1 problems found or the operation failed, 2 usage or
    input error; every failure is one line on stderr (-v shows log records,
    COLDTIER_DEBUG=1 the traceback).  --json (archive, backends, ls, verify,
    probe) gives output for scripts, and so it does for repack and expire; read
    writes JSON Lines already.
    """


for _command in (archive_cmd, read_cmd, verify_cmd, shred_cmd):
    _command.params.append(encryption_param())
archive_cmd.params.append(new_key_param())
_COMMANDS: list[click.Command] = [archive_cmd, backends, ls_cmd, read_cmd, verify_cmd, probe_cmd]
_COMMANDS += [shred_cmd, keys_cmd, repack_cmd, expire_cmd]
for _command in _COMMANDS:
    _command.params.extend(_logging_params())
    cli.add_command(_command)


# ---------------------------------------------------------------------------
# Entry point


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"coldtier: error: {one_line(message)}\n")
    if os.environ.get("COLDTIER_DEBUG"):
        traceback.print_exc()
    return code


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has gone (``| head``)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def run(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` and return its exit code."""
    _Logging.reset()
    try:
        result = cli.main(args=argv, prog_name="coldtier", standalone_mode=False)
        sys.stdout.flush()
    except click.exceptions.NoArgsIsHelpError as exc:
        sys.stderr.write(exc.ctx.get_help() + "\n" if exc.ctx else "")
        return EXIT_USAGE
    except click.UsageError as exc:
        hint = f" (see: coldtier {exc.ctx.info_name} --help)" if exc.ctx and exc.ctx.parent else ""
        return _fail(exc.format_message() + hint, EXIT_USAGE)
    except click.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        return _fail("interrupted", 130)
    except _USAGE_ERRORS as exc:
        return _fail(str(exc), EXIT_USAGE)
    except coldtier.ColdTierError as exc:
        return _fail(str(exc), EXIT_PROBLEMS)
    except (_BrokenPipe, BrokenPipeError) as exc:
        if not _stdout_gone():
            return _fail(str(exc), EXIT_PROBLEMS)
        # The reader went away (e.g. `| head -1`): stop quietly with success,
        # as a Unix filter does; later flushes go to /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_PROBLEMS)
    except Exception as exc:  # noqa: BLE001 - an operator gets one line, not a traceback
        return _fail(f"unexpected {type(exc).__name__}: {exc}", EXIT_PROBLEMS)
    return int(result or 0)


def main() -> NoReturn:
    """The ``coldtier`` console script."""
    sys.exit(run())
