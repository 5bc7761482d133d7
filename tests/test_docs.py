"""The documentation is true: the options reference is current, and every example runs.

* ``docs/options.md`` is what ``python -m coldtier._reference`` generates from
  the option specs, the specs it reads are the backends' own ``OPTIONS``, and
  ``help(coldtier.open_archive)`` lists every option.
* Every ```python block of ``README.md`` and ``docs/*.md`` runs, on its own,
  in a fresh temporary directory (with ``demo-archive`` there, as ``make demo``
  leaves it, when the block names it), and exits 0.  A block that cannot run
  here is preceded by ``<!-- not run: <reason> -->``; such blocks are counted
  and each must give its reason.
* Every ``coldtier <command> --flag`` a ```sh block shows is a command and a
  flag of that command (``coldtier --help``), and every ``make <target>`` is a
  target of the Makefile; nothing is run against a store.
"""

from __future__ import annotations

import dataclasses
import os
import pydoc
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import ClassVar

import pytest

import coldtier
from coldtier import _reference, _registry
from coldtier._engine.settings import Settings
from coldtier._options import ENGINE_OPTIONS, OptionSpec

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPTIONS_PAGE = ROOT / "docs" / "options.md"
#: At most this many blocks may be marked not run (each with its reason).
MAX_NOT_RUN = 4

_FENCE = re.compile(r"^```(\S*)")
_NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->$")


@dataclasses.dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    lang: str
    source: str
    not_run: str | None  # the reason, when marked

    @property
    def id(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks(document: Path) -> list[Block]:
    """The fenced code blocks of a Markdown document, with their not-run markers."""
    lines = document.read_text().splitlines()
    found: list[Block] = []
    marker: tuple[int, str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := _NOT_RUN.match(line.strip()):
            assert m[1], f"{document.name}:{i + 1}: a not-run marker must give its reason"
            marker = (i + 1, m[1])
        elif m := _FENCE.match(line):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
            assert end is not None, f"{document.name}:{i + 1}: unclosed code block"
            found.append(
                Block(document, i + 1, m[1], "\n".join(lines[i + 1 : end]) + "\n", marker and marker[1])
            )
            marker = None
            i = end
        elif line.strip() and marker is not None:
            pytest.fail(f"{document.name}:{marker[0]}: a not-run marker must come right before a code block")
        i += 1
    assert marker is None, f"{document.name}:{marker[0]}: a not-run marker at the end, before no block"
    return found


ALL_BLOCKS = [block for document in DOCUMENTS for block in blocks(document)]
PYTHON = [b for b in ALL_BLOCKS if b.lang == "python"]
SHELL = [b for b in ALL_BLOCKS if b.lang in ("sh", "shell", "bash", "console")]


# ---------------------------------------------------------------------------
# The options reference


def test_options_page_is_generated_from_the_specs() -> None:
    assert OPTIONS_PAGE.read_text() == _reference.reference(), (
        "docs/options.md is not what the option specs give: run `PYTHONPATH=src python -m "
        "coldtier._reference > docs/options.md` and commit it"
    )


def test_the_reference_reads_each_backends_own_specs() -> None:
    """The SDK-free specs the reference renders are the ``OPTIONS`` of the classes that serve each scheme."""
    documented = {scheme: backend for backend in _reference.BUILTINS for scheme in backend.schemes}
    assert set(documented) == set(_registry._BUILTIN)  # every built-in scheme, once
    for scheme, backend in documented.items():
        cls = coldtier.load_backend(scheme)
        assert coldtier.available_backends()[scheme] == backend.target
        assert issubclass(cls, coldtier.store.ObjectStore)
        assert backend.options == cls.OPTIONS, scheme
        assert cls.default_object_bytes == backend.default_object_bytes, scheme
        assert not set(cls.OPTIONS) & set(ENGINE_OPTIONS), scheme


def test_every_option_says_what_it_does() -> None:
    specs = [(name, spec) for b in _reference.BUILTINS for name, spec in (b.options or {}).items()]
    for name, spec in [*specs, *ENGINE_OPTIONS.items()]:
        assert spec.doc.strip(), f"option {name!r} has no doc"
        if spec.default is not None and not (isinstance(spec.default, str) and spec.type is not str):
            assert isinstance(spec.default, spec.type), f"default of {name!r} is not a {spec.type.__name__}"
        if spec.choices and spec.default is not None:
            assert spec.default in spec.choices, name


def test_engine_defaults_are_the_settings_defaults() -> None:
    settings = Settings()
    for name, spec in ENGINE_OPTIONS.items():
        if name == "workers":
            assert settings.workers == min(4, os.cpu_count() or 1)
            assert spec.default == "min(4, CPU count)"
        else:
            assert getattr(settings, name) == spec.default, name


def test_help_of_open_archive_lists_every_option() -> None:
    shown = pydoc.render_doc(coldtier.open_archive)
    for backend in _reference.BUILTINS:
        for scheme in backend.schemes:
            assert f"{scheme}://" in shown
        for name in backend.options or {}:
            assert re.search(rf"^\s+{name} \(", shown, re.M), (backend.schemes, name)
    for name in ENGINE_OPTIONS:
        assert re.search(rf"^\s+{name} \(", shown, re.M), name
    assert "secret: keyword or environment only, never in the URL" in shown


def test_plugin_backends_are_in_the_full_reference() -> None:
    class Plugin(coldtier.store.ObjectStore):
        """A plugin store, for the reference."""

        OPTIONS: ClassVar[Mapping[str, OptionSpec]] = {
            "flavour": OptionSpec(str, choices=("a", "b"), doc="which one")
        }

    coldtier.register_backend("plugin-docs", Plugin)
    try:
        page = _reference.reference(plugins=True)
        assert "## plugin-docs:// — A plugin store, for the reference." in page
        assert "| `flavour` | str | — | which one; one of `a`, `b` |" in page
        assert "plugin-docs" not in _reference.reference()  # the committed page: built-ins only
    finally:
        _registry._registered.pop("plugin-docs")


def test_the_generator_command_prints_the_page() -> None:
    out = subprocess.run(
        [sys.executable, "-W", "error", "-m", "coldtier._reference"],
        capture_output=True, text=True, env=_env(), check=True, timeout=60,
    )  # fmt: skip
    assert out.stdout == OPTIONS_PAGE.read_text() and not out.stderr


# ---------------------------------------------------------------------------
# Code blocks


def _env() -> dict[str, str]:
    """The environment, with this checkout's ``src`` first on an absolute PYTHONPATH."""
    given = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *given])}


@pytest.fixture(scope="session")
def demo_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``demo-archive`` as ``make demo`` leaves it."""
    where = tmp_path_factory.mktemp("demo")
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "demo-archive"],
        cwd=where, env=_env(), check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return where / "demo-archive"


def test_few_blocks_are_not_run_and_each_says_why() -> None:
    marked = [b for b in ALL_BLOCKS if b.not_run is not None]
    for block in marked:
        print(f"not run: {block.id}: {block.not_run}")
        assert block.lang == "python", f"{block.id}: only python blocks are run, so only they are marked"
        assert len(block.not_run or "") >= 10, f"{block.id}: say why it is not run"
    assert len(marked) <= MAX_NOT_RUN, [b.id for b in marked]
    assert len(PYTHON) - len(marked) >= 10  # what is run is most of it


@pytest.mark.parametrize("block", [b for b in PYTHON if b.not_run is None], ids=lambda b: b.id)
def test_python_block_runs(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # Marked blocks are not collected here (no skip counted as a pass); the test above counts them.
    if "demo-archive" in block.source:
        shutil.copytree(request.getfixturevalue("demo_archive"), tmp_path / "demo-archive")
    script = tmp_path / "block.py"
    script.write_text(block.source)
    out = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", str(script)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, f"{block.id} failed:\n{out.stderr[-3000:]}"


@cache
def _help(*command: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "coldtier.cli", *command, "--help"],
        capture_output=True, text=True, env=_env(), check=True, timeout=60,
    )  # fmt: skip
    return out.stdout


def _subcommands() -> set[str]:
    listing = _help().split("Commands:", 1)[1]
    return {m[1] for m in re.finditer(r"^  (\S+)", listing, re.M)}


def _make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def _commands(source: str) -> list[list[str]]:
    """Each simple command of a shell block, as words, comments and prompts left out."""
    found = []
    for line in source.splitlines():
        line = line.strip().removeprefix("$ ")
        words = shlex.split(line, comments=True)
        command: list[str] = []
        for word in [*words, "|"]:
            if word in ("|", "&&", "||", ";"):
                if command:
                    found.append(command)
                command = []
            else:
                command.append(word)
    return found


def test_shell_blocks_exist() -> None:
    shown = [c for b in SHELL for c in _commands(b.source) if c[0].endswith("coldtier")]
    assert len(shown) >= 8


def shell_problems(source: str) -> list[str]:
    """What a shell block shows that does not exist: a coldtier command or flag, a make target."""
    problems = []
    for words in _commands(source):
        shown = " ".join(words)
        if words[0] == "make":
            problems += [f"{shown}: no make target {t!r}" for t in words[1:] if t not in _make_targets()]
        if Path(words[0]).name != "coldtier":
            continue
        if len(words) < 2 or words[1] not in _subcommands():
            problems.append(f"{shown}: no such coldtier command")
            continue
        options = _help(words[1])
        for word in words[2:]:
            flag = word.split("=", 1)[0]
            known = re.search(rf"(^|[\s,]){re.escape(flag)}([\s,=]|$)", options, re.M)
            if flag.startswith("-") and flag != "-" and not known:
                problems.append(f"{shown}: coldtier {words[1]} has no {flag}")
    return problems


@pytest.mark.parametrize("block", SHELL, ids=lambda b: b.id)
def test_shell_block_shows_real_commands(block: Block) -> None:
    assert {"archive", "ls", "read", "verify", "probe", "backends"} <= _subcommands()
    assert shell_problems(block.source) == [], block.id


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The harness itself: a made-up command, flag or target is caught; a marker needs its block."""
    assert shell_problems("coldtier frobnicate x\nmake frobnicate\ncoldtier ls x --frob  # c\n") == [
        "coldtier frobnicate x: no such coldtier command",
        "make frobnicate: no make target 'frobnicate'",
        "coldtier ls x --frob: coldtier ls has no --frob",
    ]
    assert shell_problems("$ coldtier ls x --tenant acme | head -1 && make demo\n") == []
    page = tmp_path / "page.md"
    page.write_text("<!-- not run: needs a bucket here -->\n```python\nraise SystemExit(1)\n```\n")
    (block,) = blocks(page)
    assert block.not_run == "needs a bucket here" and block.source == "raise SystemExit(1)\n"
    page.write_text("<!-- not run: needs a bucket here -->\ntext between\n```python\npass\n```\n")
    with pytest.raises(pytest.fail.Exception, match="right before a code block"):
        blocks(page)
