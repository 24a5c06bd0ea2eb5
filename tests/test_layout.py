"""The house's import arrows point one way: read every import of every package with `ast` and check each arrow.

    data_gen -> files -> training -> a model directory -> assistant -> ui (the surfaces); scenes under all

Every import counts, also one inside a function (a lazy import is an arrow all the same).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = "tests"
ANYTHING = None  # may import any package of ours but tests
# Which of our other packages each package may import.
ALLOWED: dict[str, frozenset[str] | None] = {
    "scenes": frozenset(),  # the scene world: imports nothing of ours
    "assistant": frozenset(),  # the model library: imports nothing outward
    "data_gen": frozenset({"scenes"}),
    "training": frozenset({"assistant", "scenes"}),
    "ui": frozenset({"assistant", "scenes"}),  # the surfaces
    "benchmarks": ANYTHING,
    "glyph": ANYTHING,  # the CLI: dispatches to every command
}


def packages(root: Path = ROOT) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/__init__.py") if p.parent.name != TESTS)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, package: str, ours: set[str]) -> set[str]:
    """The modules of ours (and of tests) that the file imports; `from pkg import mod` names pkg.mod, a module."""
    tops = {module.split(".")[0] for module in ours} | {TESTS}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from its own package (or one above)
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in ours else base for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] in tops}
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports, for every product package (tests left out)."""
    files = {module_name(path, root): path for package in packages(root) for path in (root / package).rglob("*.py")}
    ours = set(files)
    return {name: imported(path, name if path.name == "__init__.py" else name.rsplit(".", 1)[0], ours)
            for name, path in files.items()}


def test_every_package_has_a_rule():
    assert set(packages()) == set(ALLOWED), "add the new package's arrows to ALLOWED (and to DESIGN's house map)"


def test_imports_point_only_the_allowed_ways():
    wrong = []
    for module, targets in import_graph().items():
        home = module.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other == TESTS:
                wrong.append(f"{module} imports {target}: product code never imports tests")
            elif other != home and ALLOWED[home] is not ANYTHING and other not in ALLOWED[home]:
                allowed = ", ".join(sorted(ALLOWED[home])) or "nothing of ours"
                wrong.append(f"{module} imports {target}: {home} may import {allowed}")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_round_a_cycle():
    graph = import_graph()
    cycles = []
    for start in sorted(graph):
        path = _path_back(graph, start)
        if path and min(path) == start:  # each cycle once, from its smallest module
            cycles.append(" -> ".join([*path, start]))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _path_back(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """The shortest chain of imports that leads from `start` back to itself, or None."""
    frontier, came_from = [start], {start: None}
    while frontier:
        following = []
        for module in frontier:
            for target in sorted(graph.get(module, ())):
                if target == start:
                    chain = [module]
                    while came_from[chain[-1]] is not None:
                        chain.append(came_from[chain[-1]])
                    return chain[::-1]
                if target not in came_from:
                    came_from[target] = module
                    following.append(target)
        frontier = following
    return None


def test_the_checker_sees_a_wrong_arrow_a_test_import_and_a_cycle(tmp_path):
    """The scan itself: a tiny house with one of each fault is caught."""
    for package, source in {"scenes": "from assistant import model\n", "assistant": "",
                            "data_gen": "from . import b\nimport tests.fake\n", "training": "", "ui": "",
                            "benchmarks": "", "glyph": ""}.items():
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "a.py").write_text(source)
    (tmp_path / "assistant" / "model.py").write_text("")
    (tmp_path / "data_gen" / "b.py").write_text("from data_gen.a import x\n")
    graph = import_graph(tmp_path)
    assert graph["scenes.a"] == {"assistant.model"} and graph["data_gen.a"] == {"data_gen.b", "tests.fake"}
    assert _path_back(graph, "data_gen.a") == ["data_gen.a", "data_gen.b"] and _path_back(graph, "scenes.a") is None
