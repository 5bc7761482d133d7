"""The options reference, rendered from the option specs so it cannot drift.

``python -m coldtier._reference > docs/options.md`` writes the reference page
(``tests/test_docs.py`` fails when the committed page differs from a fresh
one); ``python -m coldtier._reference --text`` prints the plain-text form that
``help(coldtier.open_archive)`` shows, and ``--all`` adds the backends of
installed plugins (entry points, :func:`coldtier.register_backend`).

The built-in backends' specs come from SDK-free modules
(:mod:`coldtier.backends._specs`; local and memory take no options of their
own), so rendering them imports no cloud SDK; the test checks that each is
the ``OPTIONS`` of the class :func:`coldtier.load_backend` returns.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .._options import ENGINE_OPTIONS, OptionSpec
from ..backends._specs import GCS_DEFAULT_OBJECT_BYTES, GCS_OPTIONS, R2_OPTIONS, S3_OPTIONS

__all__ = ["BUILTINS", "Backend", "markdown", "reference", "registered", "text"]

KEYWORD_ONLY = "secret: keyword or environment only, never in the URL"
COMMAND = "python -m coldtier._reference > docs/options.md"
_WIDTH = 78


@dataclass(frozen=True, slots=True)
class Backend:
    """One backend as the reference shows it."""

    schemes: tuple[str, ...]
    title: str
    target: str  # "module:Class"
    example: str  # a URL
    options: Mapping[str, OptionSpec] | None  # None: an Archive subclass, options of its own
    extra: str = ""
    default_object_bytes: int | None = None
    note: str = ""


_NONE: Mapping[str, OptionSpec] = MappingProxyType({})

#: The built-in backends, in the order the reference shows them.
BUILTINS: tuple[Backend, ...] = (
    Backend(
        ("file",),
        "local filesystem (the reference for durability)",
        "coldtier.backends.local:LocalStore",
        "/var/archive, file:///var/archive",
        _NONE,
    ),
    Backend(
        ("memory",),
        "in-process memory, for tests (nothing survives the process; the CLI refuses it)",
        "coldtier.backends.memory:MemoryStore",
        "memory://name",
        _NONE,
    ),
    Backend(
        ("s3",),
        "Amazon S3 or an S3-compatible store",
        "coldtier.backends.s3:S3Store",
        "s3://bucket/prefix?region=eu-west-1",
        S3_OPTIONS,
        extra="s3",
        note="Credentials not given as keywords come from the AWS chain: AWS_ACCESS_KEY_ID / "
        "AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, the profile, an instance or task role.",
    ),
    Backend(
        ("r2",),
        "Cloudflare R2 (the S3 API, region auto)",
        "coldtier.backends.s3:R2Store",
        "r2://bucket/prefix?account_id=0123abcd",
        R2_OPTIONS,
        extra="s3",
        note="Credentials as for s3:// (an R2 API token's access key id and secret).",
    ),
    Backend(
        ("gs", "gcs"),
        "Google Cloud Storage",
        "coldtier.backends.gcs:GCSStore",
        "gs://bucket/prefix?storage_class=ARCHIVE",
        GCS_OPTIONS,
        extra="gcs",
        default_object_bytes=GCS_DEFAULT_OBJECT_BYTES,
        note="Each object is written in one request, re-sent whole on failure: hence the smaller "
        "max_object_bytes default; raise it for fast in-region writers.",
    ),
)


def registered() -> tuple[Backend, ...]:
    """Backends of other schemes (entry points, :func:`coldtier.register_backend`): imports them."""
    from .._archive import Archive  # noqa: PLC0415 - only when asked: keeps import coldtier light
    from .._errors import ColdTierError  # noqa: PLC0415
    from .._registry import available_backends, load_backend  # noqa: PLC0415
    from ..store import ObjectStore  # noqa: PLC0415

    builtin = {scheme for backend in BUILTINS for scheme in backend.schemes}
    by_target: dict[str, list[str]] = {}
    for scheme, target in available_backends().items():
        if scheme not in builtin:
            by_target.setdefault(target, []).append(scheme)
    found = []
    for target, schemes in by_target.items():
        example = f"{schemes[0]}://…"
        try:
            cls: Any = load_backend(schemes[0])
        except ColdTierError as exc:
            found.append(Backend(tuple(schemes), f"could not be loaded here: {exc}", target, example, _NONE))
            continue
        title = (cls.__doc__ or "").strip().split("\n", 1)[0] or target
        if isinstance(cls, type) and issubclass(cls, ObjectStore):
            backend = Backend(
                tuple(schemes),
                title,
                target,
                example,
                cls.OPTIONS,
                default_object_bytes=cls.default_object_bytes,
            )
        else:
            assert issubclass(cls, Archive)
            backend = Backend(tuple(schemes), title, target, example, None)
        found.append(backend)
    return tuple(found)


# -- rendering ---------------------------------------------------------------------------------


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n % size == 0:
            return f"{n} ({n // size} {unit})"
    return str(n)


def _default(name: str, spec: OptionSpec, *, code: str = "`") -> str:
    value = spec.default
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"{code}{str(value).lower()}{code}"
    if isinstance(value, int):
        return _bytes(value) if name.endswith("_bytes") else str(value)
    if isinstance(value, str) and spec.type is not str:
        return value  # a sentence: "min(4, CPU count)"
    return f"{code}{value}{code}"


def _type(spec: OptionSpec) -> str:
    return "any" if spec.type is object else spec.type.__name__


def _meaning(spec: OptionSpec, *, code: str = "`") -> str:
    parts = [spec.doc.strip() or "(undocumented)"]
    if spec.choices:
        parts.append("one of " + ", ".join(f"{code}{c}{code}" for c in spec.choices))
    if spec.secret:
        parts.append(KEYWORD_ONLY)
    return "; ".join(parts)


def _schemes(backend: Backend) -> str:
    return ", ".join(f"{s}://" for s in backend.schemes)


def _engine_default_note(backends: Sequence[Backend]) -> list[tuple[str, int]]:
    return [(_schemes(b), b.default_object_bytes) for b in backends if b.default_object_bytes is not None]


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def markdown(backends: Sequence[Backend] = BUILTINS) -> str:
    """The reference page: one section per backend, then the engine's options."""
    out = [
        f"<!-- Generated from the option specs by `{COMMAND}`; edit the specs, not this file. -->",
        "",
        "# Options",
        "",
        "Every option goes in the archive URL's query string or as a keyword of",
        "`coldtier.open_archive` (giving one both ways with different values is an",
        "error); on the command line, in the URL or as `--opt name=value`. An unknown",
        "option is refused with the list of valid ones. Options marked *secret* are",
        "credentials: they are refused in a URL (give them as keywords, `--opt`, or",
        "through the environment) and never logged.",
        "",
        "```python",
        "import coldtier",
        "",
        'archive = coldtier.open_archive("my-archive?compression_level=9", workers=2)',
        "```",
        "",
        "Every backend also takes the [engine options](#engine-options-every-backend).",
        "A default of — means the option is unset unless given; its meaning says what",
        "happens then.",
        "",
    ]
    for backend in backends:
        out += [f"## {_schemes(backend)} — {backend.title}", ""]
        install = f"; needs `pip install 'coldtier[{backend.extra}]'`" if backend.extra else ""
        out += [f"`{backend.example}` (`{backend.target}`{install}).", ""]
        if backend.options is None:
            out += ["An `Archive` subclass: its options are its own (see its documentation).", ""]
            continue
        if not backend.options:
            out += ["No options of its own; the engine options apply.", ""]
        else:
            out += ["| option | type | default | meaning |", "|---|---|---|---|"]
            for name, spec in backend.options.items():
                out.append(
                    f"| `{name}` | {_type(spec)} | {_cell(_default(name, spec))} | {_cell(_meaning(spec))} |"
                )
            out.append("")
        if backend.default_object_bytes is not None:
            out += [f"`max_object_bytes` defaults to {_bytes(backend.default_object_bytes)} here.", ""]
        if backend.note:
            out += [backend.note, ""]
    out += ["## Engine options (every backend)", ""]
    out += ["| option | type | default | meaning |", "|---|---|---|---|"]
    for name, spec in ENGINE_OPTIONS.items():
        default = _default(name, spec)
        for schemes, size in _engine_default_note(backends) if name == "max_object_bytes" else []:
            default += f"; {schemes} {_bytes(size)}"
        out.append(f"| `{name}` | {_type(spec)} | {_cell(default)} | {_cell(_meaning(spec))} |")
    out.append("")
    return "\n".join(out)


def _wrapped(head: str, body: str) -> list[str]:
    return [
        *textwrap.wrap(head, _WIDTH, initial_indent="    ", subsequent_indent="        "),
        *textwrap.wrap(body, _WIDTH, initial_indent="        ", subsequent_indent="        "),
    ]


def _text_option(name: str, spec: OptionSpec, extra_default: str = "") -> list[str]:
    head = f"{name} ({_type(spec)}, default {_default(name, spec, code='')}{extra_default})"
    return _wrapped(head, _meaning(spec, code=""))


def text(backends: Sequence[Backend] = BUILTINS) -> str:
    """The same reference as plain text (the docstring of :func:`coldtier.open_archive`)."""
    out = [
        "Options of each backend (also in docs/options.md). Secret options are",
        "refused in a URL: give them as keywords or through the environment.",
        "A default of — means unset: the meaning says what happens then.",
    ]
    for backend in backends:
        install = f"; pip install 'coldtier[{backend.extra}]'" if backend.extra else ""
        out += [
            "",
            f"{_schemes(backend)} {backend.title}",
            f"    e.g. {backend.example} ({backend.target}{install})",
        ]
        if backend.options is None:
            out.append("    an Archive subclass: options of its own")
            continue
        if not backend.options:
            out.append("    no options of its own; the engine options apply")
        for name, spec in backend.options.items():
            out += _text_option(name, spec)
        if backend.default_object_bytes is not None:
            out.append(f"    max_object_bytes defaults to {_bytes(backend.default_object_bytes)} here")
        if backend.note:
            out += textwrap.wrap(backend.note, _WIDTH, initial_indent="    ", subsequent_indent="    ")
    out += ["", "Engine options (every backend)"]
    for name, spec in ENGINE_OPTIONS.items():
        extra = ""
        for schemes, size in _engine_default_note(backends) if name == "max_object_bytes" else []:
            extra += f"; {schemes} {_bytes(size)}"
        out += _text_option(name, spec, extra)
    return "\n".join(out) + "\n"


def reference(*, plain: bool = False, plugins: bool = False) -> str:
    """The options reference: Markdown, or ``plain`` text; ``plugins`` adds other installed backends."""
    backends = BUILTINS + registered() if plugins else BUILTINS
    return text(backends) if plain else markdown(backends)
