"""The house rules, checked on the source: one import package, no cycles, steps that do not import each other,
logic that imports no KFP, and every name of the run layout spelled once."""

from __future__ import annotations

import ast
import os
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
PACKAGE = REPO / "optbench"
# import name -> folder: the package, and the top-level folders it links to (optbench/components -> ../components)
PACKAGE_DIRS = {"optbench": PACKAGE} | {f"optbench.{p.name}": p.resolve() for p in PACKAGE.iterdir() if p.is_symlink()}
COMPONENTS = "optbench.components"
SHARED = {f"{COMPONENTS}.shared", f"{COMPONENTS}.image"}  # what every step may import


def modules() -> dict[str, Path]:
    """Every module of the project: dotted name -> file (its real path), the links followed."""
    found = {}
    for folder, _, files in os.walk(PACKAGE, followlinks=True):
        for file in sorted(f for f in files if f.endswith(".py")):
            parts = Path(folder, file).relative_to(PACKAGE.parent).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = Path(folder, file).resolve()
    return found


MODULES = modules()


def imports_of(name: str) -> set[str]:
    """The project modules `name` imports, at module level or inside functions."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in MODULES}
    out.discard(name)
    return out


GRAPH = {name: imports_of(name) for name in MODULES}


def step_of(name: str) -> str | None:
    parts = name.split(".")
    return (
        parts[2] if name.startswith(f"{COMPONENTS}.") and len(parts) > 2 and ".".join(parts[:3]) not in SHARED else None
    )


def test_every_package_folder_is_in_pyproject():
    listed = set(PYPROJECT["packages"])
    folders = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    assert folders == listed, f"not listed: {sorted(folders - listed)}; not a package: {sorted(listed - folders)}"


def test_every_data_file_of_a_package_is_installed_with_it(tmp_path):
    """An editable install reads the checkout; a wheel (what the images install) carries only what pyproject names.

    Built from the images' build context, not the checkout, whose egg-info would add files pyproject does not name.
    """
    import io
    import subprocess
    import sys
    import tarfile
    import zipfile

    from optbench.images import build_context

    with tarfile.open(fileobj=io.BytesIO(build_context())) as tar:
        tar.extractall(tmp_path / "src", filter="data")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
        + [str(tmp_path / "src")],
        check=True,
    )
    (wheel,) = tmp_path.glob("optbench-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix in (".j2", ".yaml", ".json", ".css") and "results" not in path.parts:
                name = "/".join((*package.split("."), *path.relative_to(folder).parts))
                assert name in shipped, f"{name} is not in the wheel: add it to [tool.setuptools.package-data]"


def test_no_module_imports_the_folders_by_their_bare_names():
    bare = {"components", "pipelines", "bench"}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            roots = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            assert not {r.split(".")[0] for r in roots} & bare, f"{name} imports {roots}: use optbench.<folder>"


def test_no_import_cycle():
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_step_imports_another_step_and_components_import_nothing_above_them():
    for name, imported in GRAPH.items():
        if not name.startswith(COMPONENTS):
            continue
        above = {m for m in imported if not m.startswith(COMPONENTS)}
        assert not above, f"{name} imports {sorted(above)}: components import only components"
        if step_of(name):
            others = {m for m in imported if step_of(m) not in (None, step_of(name))}
            assert not others, f"{name} imports another step: {sorted(others)}"


def test_only_component_modules_import_kfp():
    for name, path in MODULES.items():
        if not name.startswith(COMPONENTS) or path.name in ("component.py", "image.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                roots = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(r.split(".")[0] == "kfp" for r in roots), f"{name} imports KFP"


def test_every_step_has_its_component_beside_its_logic_and_pipelines_declares_none():
    steps = {step_of(name) for name in MODULES if step_of(name)}
    assert steps == {"plan", "ingest", "init_model", "train", "tune", "evaluate", "trial_metrics", "report", "notify"}
    for step in steps:
        assert f"{COMPONENTS}.{step}.component" in MODULES, f"{step} has no component.py"
    for name, path in MODULES.items():
        if name.startswith("optbench.pipelines"):
            assert "dsl.component" not in path.read_text(), f"{name} declares a component"


def literals(path: Path) -> list[str]:
    """The string literals of a module, docstrings left out (f-string parts included)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def layout_names() -> list[str]:
    """Every file or folder name of the run layout that is specific enough to find in the source."""
    names = []
    for module in ("optbench.layout", f"{COMPONENTS}.shared.schema", f"{COMPONENTS}.report.trends"):
        for node in ast.parse(MODULES[module].read_text()).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                and any(c in node.value.value for c in "._")
            ):
                names.append(node.value.value)
    return names


@pytest.mark.parametrize("name", layout_names())
def test_each_run_layout_name_is_spelled_once(name):
    spelled = [
        module for module, path in MODULES.items() for text in literals(path) if name == text or name in text.split("/")
    ]
    assert len(spelled) == 1, f"{name!r} is spelled in {spelled}"
