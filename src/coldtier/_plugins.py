"""Plugins by URL scheme: built-ins (dotted paths), entry points, and run-time registrations.

Backends (:mod:`coldtier._registry`, group ``coldtier.backends``) and key
providers (:mod:`coldtier.keys`, group ``coldtier.keys``) follow one set of
rules, kept here: entry points are read lazily on first use, a class is
imported only when its scheme is opened (so ``import coldtier`` imports no
SDK), an entry point never takes a built-in scheme (it is ignored with a
warning naming its distribution), and only a registration with
``clobber=True`` replaces one.
"""

from __future__ import annotations

import importlib
import re
import threading
import warnings
from collections import ChainMap
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Generic, TypeVar, cast

from ._errors import InvalidRequest, MissingDependency, UnknownBackend

__all__ = ["SCHEME_RE", "Plugins"]

SCHEME_RE = re.compile(r"^[a-z][a-z0-9+_.-]*$")

T = TypeVar("T", bound=type)


class Plugins(Generic[T]):
    """The classes serving each scheme of one entry-point ``group``.

    ``noun`` names one of them in messages ("backend", "key provider");
    ``bases`` are the classes a plugin must subclass, ``kinds`` their names
    as messages give them; ``extras`` maps a built-in scheme to the extra it
    needs and the top-level modules that extra brings.
    """

    def __init__(
        self,
        group: str,
        noun: str,
        *,
        bases: tuple[type, ...],
        kinds: str,
        builtin: Mapping[str, str],
        extras: Mapping[str, tuple[str, frozenset[str]]],
    ) -> None:
        self.group, self.noun, self.bases, self.kinds = group, noun, bases, kinds
        self.builtin, self.extras = builtin, extras
        self.registered: dict[str, str | T] = {}
        self._points: dict[str, str] | None = None
        self._lock = threading.Lock()

    def usable(self, points: list[EntryPoint]) -> dict[str, str]:
        """Entry points by scheme, without those that would take a built-in or an invalid scheme."""
        found: dict[str, str] = {}
        for ep in points:
            dist = ep.dist.name if ep.dist is not None else None
            if ep.name in self.builtin or not SCHEME_RE.match(ep.name):
                if dist != "coldtier" and ep.value != self.builtin.get(ep.name):  # ours agree
                    why = f"is a built-in {self.noun}" if ep.name in self.builtin else "is not a valid scheme"
                    warnings.warn(
                        f"ignoring the {self.group} entry point {ep.name!r} = {ep.value!r} of "
                        f"{dist or 'an unknown distribution'}: {ep.name!r} {why}",
                        RuntimeWarning,
                        stacklevel=5,
                    )
                continue
            found[ep.name] = ep.value
        return found

    def discovered(self) -> dict[str, str]:
        with self._lock:
            if self._points is None:
                self._points = self.usable(list(entry_points(group=self.group)))
            return self._points

    def reset(self, extra: list[EntryPoint] | None = None) -> None:
        """Forget discovered entry points (tests), optionally using ``extra`` instead."""
        usable = None if extra is None else self.usable(extra)
        with self._lock:
            self._points = usable

    def table(self) -> ChainMap[str, str | T]:
        return ChainMap(self.registered, self.discovered(), dict(self.builtin))  # type: ignore[arg-type]

    def available(self) -> Mapping[str, str]:
        """Scheme → ``"module:Class"`` of every plugin: built-ins, entry points, registered."""
        return MappingProxyType(
            {
                scheme: t if isinstance(t, str) else f"{t.__module__}:{t.__qualname__}"
                for scheme, t in sorted(self.table().items())
            }
        )

    def register(self, scheme: str, cls: T | str, *, clobber: bool) -> None:
        if not isinstance(scheme, str) or not SCHEME_RE.match(scheme):
            raise InvalidRequest(f"invalid {self.noun} scheme {scheme!r}: need ^[a-z][a-z0-9+_.-]*$")
        if not clobber and scheme in self.table():
            raise InvalidRequest(f"a {self.noun} for {scheme}:// is already registered; pass clobber=True")
        if not isinstance(cls, str) and not (isinstance(cls, type) and issubclass(cls, self.bases)):
            raise InvalidRequest(f"{cls!r} is not a {self.kinds} subclass, or a 'module:Class' string")
        with self._lock:
            self.registered[scheme] = cls

    def load(self, scheme: str) -> T:
        """The class serving ``scheme``, imported now.

        :class:`UnknownBackend` for an unknown scheme, :class:`MissingDependency`
        (naming the extra to install) when its libraries are missing.
        """
        target = self.table().get(scheme)
        if target is None:
            known = ", ".join(f"{s}://" for s in sorted(self.table()))
            raise UnknownBackend(f"no coldtier {self.noun} for {scheme}://; known schemes: {known}")
        if not isinstance(target, str):
            return target
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            extra, modules = self.extras.get(scheme, ("", frozenset()))
            missing = (exc.name or "").split(".")[0]
            if extra and missing in modules:
                raise MissingDependency(
                    f"the {scheme}:// {self.noun} needs {missing}: pip install 'coldtier[{extra}]'"
                ) from exc
            raise MissingDependency(
                f"the {scheme}:// {self.noun} ({target}) could not be imported: {exc}"
            ) from exc
        cls = getattr(module, attr, None)
        if not (isinstance(cls, type) and issubclass(cls, self.bases)):
            raise UnknownBackend(f"{target} for {scheme}:// is not a {self.kinds} subclass")
        return cast(T, cls)
