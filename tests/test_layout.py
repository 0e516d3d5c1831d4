"""The house rules, checked on the source: one import package, no cycles, steps that do not import each other,
libraries that import no step, each folder used only by whom its docstring says, logic that imports no KFP,
one name per step, and every name of the run layout spelled once."""

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
# A folder of components/ is a step when it has a component.py (the pipeline's task); otherwise a library.
STEPS = {name.split(".")[2] for name in MODULES if name.startswith(COMPONENTS) and name.endswith(".component")}
HOST = "optbench.bench"  # measures the steps' logic directly: it may import any of it


def group_of(name: str) -> str | None:
    """The folder of components/ a module is in (None outside components/, or for components/image.py)."""
    parts = name.split(".")
    package = MODULES.get(".".join(parts[:3])) if name.startswith(f"{COMPONENTS}.") else None
    return parts[2] if package is not None and package.name == "__init__.py" else None


def step_of(name: str) -> str | None:
    group = group_of(name)
    return group if group in STEPS else None


def used_by(group: str) -> set[str]:
    """Who a folder of components/ says uses it: its docstring's line "Used by: steps" or "Used by: steps, host"."""
    doc = ast.get_docstring(ast.parse(MODULES[f"{COMPONENTS}.{group}"].read_text())) or ""
    found = [line for line in doc.splitlines() if line.startswith("Used by: ")]
    assert len(found) == 1, f"components/{group}/__init__.py: say who uses it in one line, 'Used by: steps[, host] ...'"
    users = set(found[0].removeprefix("Used by: ").split(" (")[0].rstrip(".").split(", "))
    assert users in ({"steps"}, {"steps", "host"}), f"components/{group}: {found[0]!r} is not 'steps' or 'steps, host'"
    return users


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
        steps = {m for m in imported if step_of(m) not in (None, step_of(name))}
        assert not steps, f"{name} imports a step it is not part of: {sorted(steps)}"


def test_each_folder_of_components_is_used_only_by_whom_it_says():
    """A folder used only by steps can change without a look at the host's code, and the other way round."""
    groups = {group_of(name) for name in MODULES} - {None}
    host_users = {group for group in groups if "host" in used_by(group)}
    for name, imported in GRAPH.items():
        if name.startswith(COMPONENTS) or name.startswith(HOST):
            continue
        for module in imported:
            group = group_of(module)
            if group is None or group in host_users:
                continue
            # the pipeline is assembled from the steps' component modules, and from nothing else of theirs
            assert name.startswith("optbench.pipelines") and module.endswith(".component"), (
                f"{name} imports {module}, but components/{group}/ says it is used by steps only"
            )
    unused = {
        g
        for g in host_users
        if not any(group_of(m) == g for n, i in GRAPH.items() if not n.startswith((COMPONENTS, HOST)) for m in i)
    }
    assert not unused, f"these folders say the host uses them, and nothing of the host imports them: {sorted(unused)}"


def test_only_component_modules_import_kfp():
    for name, path in MODULES.items():
        if not name.startswith(COMPONENTS) or path.name in ("component.py", "image.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                roots = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(r.split(".")[0] == "kfp" for r in roots), f"{name} imports KFP"


def test_every_step_has_its_component_beside_its_logic_and_pipelines_declares_none():
    for step in STEPS:
        if step == "notify":  # the webhook's logic is the shared library's: the report step alerts too
            continue
        logic = ast.parse(MODULES[f"{COMPONENTS}.{step}.{step}"].read_text())
        entry = {n.name for n in logic.body if isinstance(n, ast.FunctionDef)}
        assert f"run_{step}" in entry, f"components/{step}/{step}.py has no run_{step}: the step's entry point"
    for name, path in MODULES.items():
        if name.startswith("optbench.pipelines"):
            assert "dsl.component" not in path.read_text(), f"{name} declares a component"


def test_each_step_has_one_name_for_its_folder_task_resources_and_timing():
    """A step's folder name is what the pipeline passes its task's settings under, the cluster's resources key,
    and the name its timing line carries in the run log."""
    from optbench.pipelines.cluster import DEFAULT_RESOURCES, LIKE_TRAIN
    from optbench.pipelines.pipeline import build_pipeline

    named: set[str] = set()
    for notify, rounds in ((False, 0), (True, 0), (False, 1)):
        build_pipeline(lambda task, step: named.add(step), notify_failures=notify, rounds=rounds)
    assert named == STEPS
    assert set(DEFAULT_RESOURCES) | {LIKE_TRAIN} == STEPS
    timed = set()
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "timed" and node.args:
                timed.add(node.args[0].value)  # type: ignore[attr-defined]
    assert timed == STEPS - {"notify"}, "every step but the exit handler times itself under its own name"
    for step in STEPS:  # a step's component functions are named for it (the confirming round is train's)
        defined = {
            n.name
            for n in ast.parse(MODULES[f"{COMPONENTS}.{step}.component"].read_text()).body
            if isinstance(n, ast.FunctionDef)
        }
        assert step in defined, f"components/{step}/component.py defines {sorted(defined)}, not {step}"


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
    for module in ("optbench.layout", f"{COMPONENTS}.shared.schema", f"{COMPONENTS}.history.trends"):
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
