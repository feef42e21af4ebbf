"""The package's shape: lvm's modules import each other without a cycle, and the UI's training core
never imports Streamlit or Plotly (which the app no longer uses either)."""
from __future__ import annotations

import ast
from pathlib import Path

LVM = Path(__file__).resolve().parents[1] / "lvm"


def import_graph() -> dict[str, set[str]]:
    """module -> the lvm modules it imports (at any depth of the file, lazy imports included)."""
    names = {p.stem for p in LVM.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in LVM.glob("*.py"):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:  # from .x import y
                    deps.add(node.module.split(".")[0])
                else:            # from . import x, y
                    deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lvm."):
                deps.add(node.module.split(".")[1])
        graph[path.stem] = {d for d in deps if d in names and d != path.stem}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules, or [] when there is none (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str]:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        stack.pop()
        return []

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return []


def test_the_import_graph_of_lvm_has_no_cycle() -> None:
    graph = import_graph()
    assert {"cli", "commands", "trainer", "config"} <= graph.keys()
    assert "cli" not in graph["commands"]  # cli translates flags into commands, never the reverse
    assert cycle(graph) == [], " -> ".join(cycle(graph))


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []


def test_the_training_core_never_imports_a_ui() -> None:
    for path in LVM.glob("*.py"):
        tree = ast.parse(path.read_text())
        mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mods |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not mods & {"streamlit", "plotly"}, path.name
