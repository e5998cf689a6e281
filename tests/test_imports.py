"""The project's modules import one way, down the floors: no circle, even through a third module."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "utils", "benchmarks")


def project_imports(path: Path) -> set:
    """Project modules imported anywhere in `path` (top level or inside functions), as dotted names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n.split(".")[0] in PACKAGES}
    return found


def import_graph(root=ROOT) -> dict:
    modules = {".".join(p.relative_to(root).with_suffix("").parts): p
               for package in PACKAGES for p in (root / package).glob("*.py")}
    modules = {name.removesuffix(".__init__"): p for name, p in modules.items()}
    return {name: sorted(m for m in project_imports(p) if m in modules and m != name)
            for name, p in modules.items()}


def find_circle(graph: dict) -> list:
    """One import circle as [a, b, ..., a], or [] if there is none (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (circle := visit(nxt)):
                return circle
        state[node] = "done"
        stack.pop()
        return []

    for node in graph:
        if node not in state and (circle := visit(node)):
            return circle
    return []


def test_the_circle_finder_finds_a_circle():
    assert find_circle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_circle({"a": ["b"], "b": ["c"], "c": []}) == []


def test_no_import_circle_among_the_project_modules():
    graph = import_graph()
    assert {"utils.training", "utils.run", "utils.__main__", "utils.device", "models"} <= set(graph)
    assert "utils.transforms" in graph["utils.loaders"]  # real imports
    assert "utils.run" in graph["utils.__main__"]
    assert find_circle(graph) == [], f"import circle: {' -> '.join(find_circle(graph))}"


def test_training_holds_no_device_or_precision_detection():
    source = (ROOT / "utils" / "training.py").read_text()
    for name in ("is_available", "get_device_capability", "mkldnn", "def pick_", "class Precision"):
        assert name not in source, name
