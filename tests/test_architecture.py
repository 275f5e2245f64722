"""The house rules of ARCHITECTURE.md, checked from the code's own imports (ast only, nothing is imported).

- no import cycle inside personagen/, counting imports written inside functions;
- `openai` and `xllamacpp` are imported only under personagen/llm/;
- outside a package, only its face (`personagen/<pkg>/__init__.py`) is imported, never a submodule
  (the bench package and benchmarks/ may reach inside: they measure internals);
- imports flow one way, down the layers of ARCHITECTURE.md (LAYERS below: a package imports only packages of a
  lower layer, or its own modules);
- no function in personagen/ is longer than 80 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "personagen"
MAX_FUNCTION_LINES = 80
LLM_ONLY = ("openai", "xllamacpp")
# The layers of ARCHITECTURE.md, bottom (0) to top: a package may import only packages of a lower layer.
# A new stage package gets a layer here (above everything it imports, below api).
LAYERS: dict[str, int] = {
    "errors": 0, "_version": 0, "resources": 0, "locking": 0,
    "store": 1, "templating": 1, "names": 1, "infile": 1, "options": 1,
    "library": 2, "metrics": 2, "surveys": 2, "llm": 2,
    "census": 3, "personas": 3, "priors": 3, "prefs": 3, "calibration_report": 3,
    "elicit": 4, "enrich": 4, "calibrate": 4, "publish": 4, "finetune": 4, "mixture": 4,
    "endow": 5, "pipeline": 5, "bench": 5,
    "reproduce": 6,
    "api": 7,
    "commands": 8,
    "cli": 9, "": 9,  # "" is the package face personagen/__init__.py
}
# Submodule imports allowed across packages, and functions allowed over the limit (none at present).
FACE_EXCEPTIONS: set[tuple[str, str]] = set()
LONG_FUNCTION_EXCEPTIONS: set[tuple[str, str]] = set()


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def is_package(name: str, modules: dict[str, Path]) -> bool:
    return name in modules and modules[name].name == "__init__.py"


def bound_in_face(package: str, name: str, modules: dict[str, Path]) -> bool:
    """Whether the package's __init__ binds `name` to something other than its own submodule `name`."""
    tree = ast.parse(modules[package].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != package:
            if any((a.asname or a.name) == name for a in node.names):
                return True
        elif isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
            return True
    return False


def imported_names(path: Path, modules: dict[str, Path], root: Path = ROOT) -> list[tuple[str, int]]:
    """Every module `path` imports (absolute names, with line numbers), wherever the import statement stands."""
    me = module_name(path, root)
    base = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                is_sub = sub in modules and not (is_package(mod, modules) and bound_in_face(mod, alias.name, modules))
                found.append((sub if is_sub else mod, node.lineno))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _ in imported_names(path, modules):
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def owning_package(module: str, modules: dict[str, Path]) -> str:
    return module if is_package(module, modules) else module.rpartition(".")[0]


def top_package(module: str) -> str:
    """personagen.calibrate.fit -> "calibrate"; personagen -> ""."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations() -> list[str]:
    bad = []
    for a, targets in sorted(import_graph().items()):
        for b in sorted(targets):
            pa, pb = top_package(a), top_package(b)
            if pa == pb:
                continue
            if pa not in LAYERS or pb not in LAYERS:
                bad.append(f"{a} -> {b}: give {pa if pa not in LAYERS else pb!r} a layer in LAYERS")
            elif LAYERS[pb] >= LAYERS[pa]:
                bad.append(f"{a} (layer {LAYERS[pa]}) imports {b} (layer {LAYERS[pb]}): imports must flow down")
    return bad


def face_violations() -> list[str]:
    modules = package_modules()
    bad = []
    for name, path in modules.items():
        if name.startswith("personagen.bench"):
            continue
        mine = owning_package(name, modules)
        for target, line in imported_names(path, modules):
            if target not in modules or is_package(target, modules):
                continue
            home = target.rpartition(".")[0]
            if home == "personagen" or mine == home or mine.startswith(home + "."):
                continue
            if (name, target) not in FACE_EXCEPTIONS:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target} (use the face {home})")
    return bad


def shadowing_face_names() -> list[str]:
    """Names a package face binds that are also one of its submodules (`from personagen.metrics import evaluate`
    would read as the submodule to a tool and to a reader, and becomes the module once something imports
    `personagen.metrics.evaluate`): the face's public names and its submodules' names are kept apart."""
    modules = package_modules()
    bad = []
    for name, path in sorted(modules.items()):
        if not is_package(name, modules):
            continue
        subs = {m.rpartition(".")[2] for m in modules if m.rpartition(".")[0] == name}
        for n in sorted(subs):
            if bound_in_face(name, n, modules):
                bad.append(f"{path.relative_to(ROOT)} exports {n!r}, which is also its submodule {name}.{n}")
    return bad


def llm_import_violations() -> list[str]:
    modules = package_modules()
    bad = []
    for path in PKG.rglob("*.py"):
        if path.is_relative_to(PKG / "llm"):
            continue
        for target, line in imported_names(path, modules):
            if target.split(".")[0] in LLM_ONLY:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return bad


def long_functions() -> list[str]:
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                n = node.end_lineno - first + 1
                if n > MAX_FUNCTION_LINES and (str(path.relative_to(ROOT)), node.name) not in LONG_FUNCTION_EXCEPTIONS:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} is {n} lines")
    return bad


def test_no_import_cycles() -> None:
    assert find_cycles(import_graph()) == []


def test_cycle_finder_sees_a_cycle() -> None:
    # a -> b -> c -> a is one cycle; d only points into it.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]


def test_import_reader_tells_submodules_from_face_names(tmp_path: Path) -> None:
    # personagen/x/__init__.py re-exports f and g from its submodule y; g is also a submodule name (like
    # prefs.evaluate once was). Importing y itself, or anything from personagen.x.y, reaches inside; f and g do not.
    pkg = tmp_path / "personagen" / "x"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from personagen.x.y import f, g\n")
    (pkg / "y.py").write_text("def f():\n    pass\n")
    (pkg / "g.py").write_text("")
    user = tmp_path / "personagen" / "z.py"
    user.write_text("from personagen.x import y\nfrom personagen.x import f, g\n\ndef h():\n"
                    "    from personagen.x.y import f\n")
    modules = {"personagen.x": pkg / "__init__.py", "personagen.x.y": pkg / "y.py", "personagen.x.g": pkg / "g.py",
               "personagen.z": user}
    assert imported_names(user, modules, tmp_path) == [
        ("personagen.x.y", 1), ("personagen.x", 2), ("personagen.x", 2), ("personagen.x.y", 5)]


def test_llm_libraries_only_under_llm() -> None:
    assert llm_import_violations() == []


def test_imports_flow_down_the_layers() -> None:
    assert layer_violations() == []


def test_outside_code_imports_faces_only() -> None:
    assert face_violations() == []


def test_face_names_are_not_submodule_names() -> None:
    assert shadowing_face_names() == []


def test_no_long_functions() -> None:
    assert long_functions() == []


if __name__ == "__main__":
    for cyc in find_cycles(import_graph()):
        print("CYCLE", " -> ".join(cyc))
    for line in dict.fromkeys(llm_import_violations() + layer_violations() + face_violations() + long_functions()
                              + shadowing_face_names()):
        print(line)
