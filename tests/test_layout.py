"""The code's layout holds: eight parts, imports running one way, no import circles.

Parts, lowest first: serving/ (the model server, TensorFlow and TF Serving's API only),
components/ (TFX components and user code), pipeline/ (the definition),
metadata/ (reading ML Metadata), profiling/ (`init`: a profile for a CSV), orchestration/
(running and compiling), deployment/ (operations on pushed models: serve, versions, rollback),
cli/ (the command line and presentation). A module may import its own part and the parts below
it. Imports inside functions count too, so an import written to dodge a circle fails here as well.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

from tests.conftest import (
    CODE_FOLDERS,
    LONGEST_GROUPS_FIRST,
    PROJECT_ROOT,
    SHARED_RUN_GROUPS,
    xdist_group,
)

LAYERS = CODE_FOLDERS


def project_modules() -> dict[str, Path]:
    modules = {}
    for layer in LAYERS:
        for path in (PROJECT_ROOT / layer).rglob("*.py"):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules imported anywhere in the file (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def test_imports_run_from_the_command_line_down_to_the_components():
    wrong_way = [
        f"{module} imports {imported}"
        for module, imported_modules in import_graph().items()
        for imported in imported_modules
        if LAYERS.index(imported.split(".")[0]) > LAYERS.index(module.split(".")[0])
    ]
    assert wrong_way == []


def import_circle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of `graph` (its modules in order, the first repeated at the end), or
    [] when there is none. A package's own __init__ is left out: `import metadata.store` names
    the package `metadata` too, which is no edge of its own."""
    edges = {
        module: {m for m in imported if "." in m or m not in LAYERS}
        for module, imported in graph.items()
    }
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as circle:
        return list(circle.args[1])
    return []


def test_there_are_no_import_circles():
    assert import_circle(import_graph()) == []


def test_an_import_circle_is_found_and_named():
    """The check above can fail: a circle of three modules is reported with its members."""
    graph = {
        "metadata.a": {"metadata.b"},
        "metadata.b": {"metadata.c"},
        "metadata.c": {"metadata.a", "metadata"},
        "metadata": set(),
    }
    circle = import_circle(graph)
    assert circle[0] == circle[-1] and set(circle) == {"metadata.a", "metadata.b", "metadata.c"}
    assert import_circle({**graph, "metadata.c": {"metadata"}}) == []


def test_the_graph_sees_real_imports():
    """The checks above read what they should: known edges are in the graph."""
    graph = import_graph()
    assert "pipeline.definition" in graph["orchestration.local_runner"]
    assert "components.tfx_private" in graph["pipeline.baseline"]
    assert "metadata.store" in graph["metadata.runs"]
    assert "deployment.model_versions" in graph["deployment.rollback"]
    assert "serving.rest_api" in graph["deployment.serve"]


def test_tfx_private_names_are_used_only_through_tfx_private():
    """A TFX upgrade has one file to read: no other module reaches into TFX's private names."""
    offenders = []
    for name, path in project_modules().items():
        if name == "components.tfx_private":
            continue
        text = path.read_text()
        for needle in (
            "._resolve(",
            "._CsvToExample",
            "._PartitionFn",
            "tensorflow.python",
            "_tf_trackable",
            "__execution_result__",
            "is running.",
            "._Do(",
            "._ValidateOnce",
            "._GetModelStatus",
            "._SendRequest",
        ):
            if needle in text:
                offenders.append(f"{name}: {needle}")
    assert offenders == []


def test_tests_that_read_one_shared_run_are_one_group(request: pytest.FixtureRequest):
    """A worker runs a group whole; a test reading a session's run outside its group would run
    that pipeline again on another worker. (Of the tests this session collected.)"""
    items = request.session.items
    for group, fixture in SHARED_RUN_GROUPS.items():
        readers = {xdist_group(item) for item in items if fixture in item.fixturenames}
        assert readers <= {group}, fixture


def test_the_longest_groups_name_groups_that_exist():
    tests = PROJECT_ROOT / "tests"
    marked = " ".join(path.read_text() for path in tests.glob("test_*.py"))
    unknown = [
        group
        for group in LONGEST_GROUPS_FIRST
        if not (tests / f"{group}.py").is_file()
        and group not in SHARED_RUN_GROUPS
        and f'xdist_group("{group}")' not in marked
    ]
    assert unknown == []


def test_pytest_xdist_sees_the_groups(request: pytest.FixtureRequest):
    """Under `--dist loadgroup` a worker files a test under its group by suffixing its node id
    (pytest 9.2 silently broke that: pytest-xdist issue 1386)."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not running on pytest-xdist workers with --dist loadgroup")
    assert request.node.nodeid.endswith("@test_layout"), request.node.nodeid
