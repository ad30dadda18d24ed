"""Untrusted files never run code: a scan of the package source (so it stays true as code is added).

Every ``torch.load`` passes ``weights_only=True``; nothing unpickles (``pickle``/``dill``/
``joblib``/``shelve``/``marshal``, ``np.load(allow_pickle=True)``, ``torch.jit.load``,
``yaml.load`` without a safe loader) and nothing calls ``eval``/``exec``/``compile``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import labelsplat

SRC = Path(labelsplat.__file__).resolve().parent
FORBIDDEN_NAMES = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def scan(tree: ast.AST, where: str) -> list[str]:
    """Problems in one module's AST (each 'file:line: what')."""
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for n in names:
                if n.split(".")[0] in FORBIDDEN_MODULES and not (n == "pickle" and _only_exception_use(tree)):
                    bad.append(f"{where}:{node.lineno}: imports {n}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        line = f"{where}:{node.lineno}"
        if isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_NAMES:
            bad.append(f"{line}: calls {node.func.id}()")
        if name.endswith("torch.load"):
            v = _kw(node, "weights_only")
            if not (isinstance(v, ast.Constant) and v.value is True):
                bad.append(f"{line}: torch.load without weights_only=True")
        if name in ("np.load", "numpy.load"):
            v = _kw(node, "allow_pickle")
            if v is not None and not (isinstance(v, ast.Constant) and v.value is False):
                bad.append(f"{line}: np.load with allow_pickle")
        if name.endswith("jit.load") or name.endswith("read_pickle"):
            bad.append(f"{line}: {name} (can run code)")
        if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
            v = _kw(node, "Loader")
            if name != "yaml.load" or not (v is not None and "Safe" in _dotted(v)):
                bad.append(f"{line}: {name} without SafeLoader")
        if name.split(".")[0] in FORBIDDEN_MODULES and name.split(".")[-1] in ("load", "loads", "Unpickler", "open"):
            bad.append(f"{line}: {name}")
    return bad


def _only_exception_use(tree: ast.AST) -> bool:
    """``import pickle`` used only for ``pickle.UnpicklingError`` (catching torch's refusal) is fine."""
    uses = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "pickle"]
    return all(u.attr == "UnpicklingError" for u in uses)


def test_source_has_no_unsafe_loading():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 30
    problems = []
    n_torch_load = 0
    for f in files:
        text = f.read_text(encoding="utf-8")
        n_torch_load += text.count("torch.load(")
        problems += scan(ast.parse(text, filename=str(f)), str(f.relative_to(SRC)))
    assert problems == [], "\n".join(problems)
    assert n_torch_load >= 3  # the scan did see the loaders (fit checkpoints, parser weights, train state)


def test_scan_catches_unsafe_code():
    """The scanner itself: each forbidden pattern is reported (so the test above can fail)."""
    src = (
        "import torch, numpy as np, pickle\n"
        "torch.load(p)\n"
        "torch.load(p, weights_only=False)\n"
        "np.load(p, allow_pickle=True)\n"
        "eval(s)\n"
        "pickle.loads(b)\n"
        "torch.jit.load(p)\n"
        "torch.load(p, weights_only=True)\n"
        "model.eval()\n"
    )
    bad = scan(ast.parse(src), "x.py")
    assert any("imports pickle" in b for b in bad)
    assert sum("torch.load without weights_only=True" in b for b in bad) == 2
    assert any("allow_pickle" in b for b in bad)
    assert any("calls eval()" in b for b in bad)
    assert any("pickle.loads" in b for b in bad)
    assert any("jit.load" in b for b in bad)
    assert not any(":8:" in b or ":9:" in b for b in bad)  # the safe forms pass
