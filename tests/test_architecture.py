"""Architecture: the import-linter contracts of pyproject.toml hold, and no import cycle joins
labelsplat's modules. Function-local imports count: grimp (import-linter's graph builder) reads
every import statement, wherever it is. Nothing is imported from labelsplat itself, so these
checks take a few seconds and need no torch."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import grimp
import pytest
from importlinter import configuration
from importlinter.application import output
from importlinter.application.use_cases import lint_imports

configuration.configure()  # import-linter's readers and graph builder (its command line does this too)

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

def _contracts() -> list[dict]:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]


def _lint(contract: dict, config_dir: Path) -> tuple[bool, str]:
    """Run one contract through import-linter; (kept, import-linter's report)."""
    session = {k: v for k, v in tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"].items()
               if k != "contracts"}
    lines = ["[tool.importlinter]"] + [f"{k} = {json.dumps(v)}" for k, v in session.items()]
    lines += ["", "[[tool.importlinter.contracts]]"] + [f"{k} = {json.dumps(v)}" for k, v in contract.items()]
    config = config_dir / f"{contract['id']}.toml"
    config.write_text("\n".join(lines) + "\n")
    with output.console.capture() as captured:
        kept = lint_imports(str(config), cache_dir=None, no_logo=True)
    return kept, captured.get()


CONTRACT_IDS = [c["id"] for c in _contracts()]


@pytest.mark.parametrize("contract_id", CONTRACT_IDS)
def test_contract(contract_id, tmp_path):
    contract = next(c for c in _contracts() if c["id"] == contract_id)
    kept, report = _lint(contract, tmp_path)
    assert kept, report


# ----------------------------------------------------------------------------- cycles
@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("labelsplat", cache_dir=None)


def _strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """The import cycles: strongly connected sets of two or more modules (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.add(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def _describe(graph: grimp.ImportGraph, component: set[str]) -> str:
    """Every import between the modules of a cycle, with its line."""
    rows = []
    for a in sorted(component):
        for b in sorted(graph.find_modules_directly_imported_by(a) & component):
            for d in graph.get_import_details(importer=a, imported=b):
                rows.append(f"  {a}:{d['line_number']}: {d['line_contents']}")
    return "\n".join(rows)


def test_no_import_cycles(graph):
    cycles = _strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n\n".join(_describe(graph, c) for c in cycles)


def test_cycle_finder_sees_function_local_imports(tmp_path, monkeypatch):
    """A cycle closed only by an import inside a function is found."""
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n    return a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    g = grimp.build_graph("cyclepkg", cache_dir=None)
    assert _strongly_connected(g) == [{"cyclepkg.a", "cyclepkg.b"}]
