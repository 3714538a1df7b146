"""What the docs name exists: files and the functions they point into, `touchstream` commands
and their options, TOUCHSTREAM_* settings, `make` targets and `python -m` modules.

Docs drift quietly (a renamed module, a removed option); a reader who copies a command from
them should never be the one to find out.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import typer

from touchstream.cli import app
from touchstream.settings import ENV_NAMES

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FILE_SUFFIXES = {"py", "md", "json", "sql", "yaml", "yml", "toml", "txt", "gz", "csv", "html"}
PATH = re.compile(
    r"(?<![\w./-])((?:touchstream|streams|sinks|schemas|tests|bench|deploy|docs|\.ci)/[\w./-]*\w)"
)
# environment variables that are not settings: the engine switch and compose's interpolations
NOT_SETTINGS = {"TOUCHSTREAM_NATIVE", "TOUCHSTREAM_URL"}
CODE_SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)


def _code(text: str) -> list[str]:
    """The lines of code in a page: fenced blocks' lines and inline spans."""
    lines = [line for block in FENCE.findall(text) for line in block.splitlines()]
    return lines + CODE_SPAN.findall(FENCE.sub("", text))


def _defines(source: Path, name: str) -> bool:
    """A function, class, constant or attribute (`self.name =`) of that name in `source`."""
    pattern = rf"^\s*(?:async def|def|class) {name}\b|^\s*(?:self\.)?{name}\s*[:=]"
    return re.search(pattern, source.read_text(), re.M) is not None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_named_exists(doc: Path) -> None:
    missing = []
    for ref in PATH.findall(doc.read_text()):
        if (ROOT / ref).exists():
            continue
        module, _, attr = ref.rpartition(".")
        source = ROOT / f"{module}.py"
        if attr not in FILE_SUFFIXES and source.exists() and _defines(source, attr):
            continue  # sinks/writer.store_batch: a function of sinks/writer.py
        missing.append(ref)
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_a_name_given_beside_a_module_is_in_it(doc: Path) -> None:
    """`streams/runtime/tables.py` `StagedTable`: the name is defined in that module."""
    pairs = re.findall(
        r"`((?:touchstream|streams|sinks|schemas|bench)/[\w/]+\.py)` `([A-Za-z_]\w*)[\w.()=]*`",
        doc.read_text(),
    )
    assert [f"{p} {n}" for p, n in pairs if not _defines(ROOT / p, n)] == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_command_and_option_named_exists(doc: Path) -> None:
    root = typer.main.get_command(app)
    wrong = []
    for line in _code(doc.read_text()):
        for words, rest in re.findall(
            r"(?:^|[\s/(])touchstream ([a-z][\w-]*(?: [a-z][\w-]*)?)(.*)", line
        ):
            name, _, sub = words.partition(" ")
            command = root.commands.get(name)  # type: ignore[attr-defined]
            if command is not None and hasattr(command, "commands"):
                command = command.commands.get(sub)
            if command is None:
                wrong.append(f"touchstream {words}")
                continue
            options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            rest = re.split(r"\s#\s", rest)[0]  # not the comment after the command
            wrong += [
                f"touchstream {name} {option}"
                for option in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", rest)
                if option not in options | {"--help"}
            ]
    assert wrong == []


@pytest.mark.parametrize("doc", [*DOCS, *sorted((ROOT / "deploy").rglob("*.*"))], ids=str)
def test_every_setting_named_exists(doc: Path) -> None:
    settings = {f"TOUCHSTREAM_{name.upper()}" for name in ENV_NAMES}
    text = re.sub(r"\$\{[^}]*\}", "", doc.read_text(errors="replace"))  # compose interpolates
    named = set(re.findall(r"\bTOUCHSTREAM_[A-Z0-9_]*[A-Z0-9]\b", text))
    assert named - settings - NOT_SETTINGS == set()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_make_target_and_module_named_exists(doc: Path) -> None:
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    code = _code(doc.read_text())
    named = {t for line in code for t in re.findall(r"(?:^|\s)make ([a-z][\w-]*)", line)}
    assert named - targets == set()
    modules = {m for line in code for m in re.findall(r"python -m ([\w.]+)", line)}
    assert [m for m in modules if importlib.util.find_spec(m) is None] == []
