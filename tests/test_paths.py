"""Every repository path the prose names exists: README, docs/ and every other Markdown file, and the docstrings
and comments of the code and tests. A path that points nowhere sends a reader nowhere, and it is how a map in
prose drifts from the code; this fails on the commit that moves the file."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOP = ("components", "optbench", "pipelines", "bench", "containers", "infra", "tests", "docs", "mk", ".ci")
# a path from the repository's root, as prose writes it; one followed by a placeholder (<run_id>, {name}, *) is a
# pattern, not a path
TOPS = "|".join(map(re.escape, TOP))
NAMED = re.compile(rf"(?<![\w./-])((?:{TOPS})/[\w./-]*[\w/])(?![<{{*\w])")
LINK = re.compile(r"\]\(([^)\s]+)\)")
SKIPPED = {".git", ".venv", ".cache", "node_modules"}


def tracked(suffix: str) -> list[Path]:
    return sorted(
        p
        for p in REPO.rglob(f"*{suffix}")
        if not SKIPPED & set(p.relative_to(REPO).parts) and not p.is_symlink() and "results" not in p.parts
    )


def ignored(path: str) -> bool:
    """A build output .gitignore names (containers/.build): named in prose, created by a command."""
    patterns = [line.strip().strip("/") for line in (REPO / ".gitignore").read_text().splitlines()]
    return any(p and not p.startswith(("#", "!")) and (path == p or path.startswith(p + "/")) for p in patterns)


def prose_of(path: Path) -> str:
    """A Python file's docstrings and comments; a Markdown file whole."""
    text = path.read_text()
    if path.suffix == ".md":
        return text
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docs = [ast.get_docstring(n) or "" for n in ast.walk(ast.parse(text)) if isinstance(n, nodes)]
    comments = [t.string for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT]
    return "\n".join(docs + comments)


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(md: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in md.read_text().splitlines() if line.startswith("#")}


FILES = tracked(".md") + tracked(".py")


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_path_named_exists(path):
    named = {name.rstrip("/.") for name in NAMED.findall(prose_of(path))}
    missing = sorted(n for n in named if not (REPO / n).exists() and not ignored(n))
    assert not missing, f"{path.relative_to(REPO)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("md", tracked(".md"), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_reaches_a_file_and_its_heading(md):
    for target in LINK.findall(md.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        file, _, anchor = target.partition("#")
        dest = (md.parent / file).resolve() if file else md
        assert dest.exists(), f"{md.relative_to(REPO)} links to {target}: no such file"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{md.relative_to(REPO)} links to {target}: no such heading"


def test_the_check_finds_a_path_that_does_not_exist(tmp_path):
    moved = tmp_path / "moved.py"
    moved.write_text('"""The logic is in components/report/build.py, which was renamed."""\n# see docs/nowhere.md\n')
    named = set(NAMED.findall(prose_of(moved)))
    assert named == {"components/report/build.py", "docs/nowhere.md"}
    assert not any((REPO / n).exists() for n in named)
    assert not NAMED.findall("runs/<run_id>/report/ and components/*/component.py and tests/<folder>/x.py")
