"""URL and option parsing, in one place for every backend.

Options come from the URL's query string or from keywords (keywords win only
when they agree: giving one option both ways with different values is an
error).  Secret options — credentials — are accepted only as keywords.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ._errors import InvalidRequest

__all__ = ["ENGINE_OPTIONS", "Location", "OptionSpec", "parse_url"]


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One accepted option: its type (``str``, ``int``, ``bool`` or ``object``).

    ``secret`` options (credentials) are accepted only as keywords, never in
    a URL, and are masked in log records; ``choices`` limits a string;
    ``doc`` and ``default`` are what the options reference
    (``docs/options.md``, ``help(coldtier.open_archive)``) shows.  ``default``
    is documentation only (parsing never fills it in): a value of ``type``,
    or a sentence when it is not one value (``"min(4, CPU count)"``), or
    ``None`` when unset means something ``doc`` then says ("unset: ...").
    """

    type: type
    secret: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""
    default: Any = None


#: Options every backend accepts (the write engine's knobs).  ``Settings`` takes its defaults from here.
ENGINE_OPTIONS: Mapping[str, OptionSpec] = {
    "max_object_bytes": OptionSpec(
        int,
        default=256 * 2**20,
        doc="largest encoded object; a batch that would be larger is split into several complete objects",
    ),
    "object_events": OptionSpec(
        int, default=262_144, doc="most events in one object; a larger batch is split the same way"
    ),
    "row_group_events": OptionSpec(
        int, default=131_072, doc="events per Parquet row group (readers skip row groups by timestamp)"
    ),
    "compression": OptionSpec(
        str,
        choices=("zstd", "snappy", "gzip", "lz4", "brotli", "none"),
        default="zstd",
        doc="Parquet codec of new objects (any codec reads back; the digest does not depend on it)",
    ),
    "compression_level": OptionSpec(int, doc="level of the codec; unset: the codec's own default"),
    "encryption": OptionSpec(
        object,
        doc="per-tenant encryption (DESIGN.md §9): a key provider URL (file:///path/keyring, "
        "aws-kms:///path/keyring?key_id=...) or a coldtier.keys.KeyProvider; unset: plaintext objects",
    ),
    "workers": OptionSpec(
        int,
        default="min(4, CPU count)",
        doc="threads that encode, and threads that write, a batch's objects in parallel",
    ),
    "ledger": OptionSpec(
        bool,
        default=True,
        doc="write a receipt per archive call under _coldtier~ledger/ so verify finds missing objects",
    ),
}


@dataclass(frozen=True, slots=True)
class Location:
    """A parsed archive URL: ``scheme://netloc/path`` and its checked, typed options."""

    scheme: str
    netloc: str
    path: str
    options: dict[str, Any]


def _convert(name: str, spec: OptionSpec, value: Any) -> Any:
    if spec.type is object:
        return value
    if spec.type is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise InvalidRequest(f"option {name!r} must be true or false, got {value!r}")
    if spec.type is int:
        if isinstance(value, bool):
            raise InvalidRequest(f"option {name!r} must be an integer, got {value!r}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise InvalidRequest(f"option {name!r} must be an integer, got {value!r}") from None
        if number <= 0 and name != "compression_level":
            raise InvalidRequest(f"option {name!r} must be positive, got {number}")
        return number
    if not isinstance(value, str):
        raise InvalidRequest(f"option {name!r} must be a string, got {type(value).__name__}")
    if spec.choices and value not in spec.choices:
        raise InvalidRequest(f"option {name!r} must be one of {list(spec.choices)}, got {value!r}")
    return value


def parse_url(url: str, specs: Mapping[str, OptionSpec], keywords: Mapping[str, Any]) -> Location:
    """Split ``url`` and merge its query with ``keywords``, checking every name."""
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"archive URL must be a non-empty string, got {url!r}")
    parts = urlsplit(url)
    if "@" in parts.netloc:
        # Never echo the URL: it holds a credential.
        raise InvalidRequest(
            f"{parts.scheme}:// URL carries credentials (user info); pass them as keyword "
            "options or through the environment instead"
        )
    if parts.fragment:
        raise InvalidRequest("archive URL must not have a #fragment")
    allowed = dict(specs)
    merged: dict[str, Any] = {}
    for source, items in (
        ("URL", parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)),
        ("keyword", list(keywords.items())),
    ):
        for name, value in items:
            spec = allowed.get(name)
            if spec is None:
                raise InvalidRequest(
                    f"unknown option {name!r} for {parts.scheme or 'file'}://; valid options: "
                    f"{', '.join(sorted(allowed))}"
                )
            if spec.secret and source == "URL":
                raise InvalidRequest(f"option {name!r} is a credential; pass it as a keyword, not in the URL")
            converted = _convert(name, spec, value)
            if name in merged and merged[name] != converted:
                raise InvalidRequest(f"option {name!r} is given twice with different values")
            merged[name] = converted
    return Location(parts.scheme, parts.netloc, parts.path, merged)
