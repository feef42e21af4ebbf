"""The package's shape: lvm's modules import each other without a cycle, and the UI's training core
never imports Streamlit or Plotly (which the app no longer uses either)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LVM = ROOT / "lvm"


def _name(path: Path) -> str:
    """lvm/ot/solve.py -> "ot.solve", lvm/ot/__init__.py -> "ot", lvm/config.py -> "config"."""
    parts = path.relative_to(LVM).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, str]]:
    """(lvm module, name imported from it) for every import of lvm in `path`, lazy ones included; the name is
    "" for ``import lvm.x``."""
    pkg = list(path.relative_to(LVM).parent.parts)
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - (node.level - 1)]
            elif (node.module or "").split(".")[0] == "lvm":
                base = []
            else:
                continue
            mod = [p for p in (node.module or "").split(".") if p]
            mod = mod[1:] if not node.level else mod
            found += [(".".join(base + mod), a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name.split(".", 1)[1], "") for a in node.names if a.name.startswith("lvm.")]
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the lvm modules it imports (at any depth of the file, lazy imports included); a package's
    module is its __init__, "" the top package."""
    names = {_name(p) for p in LVM.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in LVM.rglob("*.py"):
        deps = set()
        for mod, name in _imports(path):
            sub = f"{mod}.{name}" if mod else name
            deps.add(sub if sub in names else mod)
        me = _name(path)
        graph[me] = {d for d in deps if d in names and d != me and d != ""}
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
    assert {"cli", "commands", "trainer", "config", "ot.solve", "live.session", "distributed.trainer"} <= graph.keys()
    assert "ot.auction" in graph["ot.solve"] and "distributed.comm" in graph["distributed.trainer"]
    assert "cli" not in graph["commands"]  # cli translates flags into commands, never the reverse
    assert cycle(graph) == [], " -> ".join(cycle(graph))


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []


def test_no_private_name_is_imported_across_modules() -> None:
    for path in LVM.rglob("*.py"):
        private = [f"{mod}.{name}" for mod, name in _imports(path) if name.startswith("_")]
        assert not private, f"{path.relative_to(ROOT)} imports {private}"


def test_the_training_core_never_imports_a_ui() -> None:
    for path in LVM.rglob("*.py"):
        tree = ast.parse(path.read_text())
        mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mods |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not mods & {"streamlit", "plotly"}, path.name


def test_no_module_is_over_400_lines() -> None:
    big = {str(p.relative_to(ROOT)): n for p in [*LVM.rglob("*.py"), *(ROOT / "ui").rglob("*.py"),
                                                 *(ROOT / "views").glob("*.py"), ROOT / "app.py",
                                                 *(ROOT / "experiments").glob("*.py"), *(ROOT / "scripts").glob("*.py"),
                                                 *(ROOT / "benchmarks").rglob("*.py")]
           if (n := len(p.read_text().splitlines())) > 400}
    assert not big, big


LANDING = """
import sys
import lvm, lvm.presets, lvm.config, ui.warmup
assert "torch" not in sys.modules, "importing lvm, lvm.presets or ui.warmup imported torch"
from streamlit.testing.v1 import AppTest
ui.warmup.start = lambda: None  # the landing view starts the warm-up (which imports torch) after its picture
at = AppTest.from_file("app.py", default_timeout=60).run()  # opens on Home
assert not at.exception, [e.value for e in at.exception]
assert at.get("image"), "the landing view drew no picture"
assert "torch" not in sys.modules, "the landing view imported torch"
print("torch-free")
"""


def test_lvm_presets_the_warm_up_and_the_landing_view_do_not_import_torch() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", LANDING], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "torch-free" in out.stdout, out.stderr[-2000:]
