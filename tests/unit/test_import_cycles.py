"""No import cycles anywhere in ``realtalk``, counting every import: at module level, under
``if TYPE_CHECKING:`` and inside functions (a lazy import that dodges a cycle at run time is the
same cycle in the design). A module that needs another's type names it through a protocol of
its own instead (``AgentHost``, ``SessionTransport``, ``AgentSpec``, ``ClientState``).

Run as a script to list every cycle: ``python tests/unit/test_import_cycles.py``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import realtalk

ROOT = Path(realtalk.__file__).parent

#: Cycles tolerated for now, as sorted tuples of module names, each with a comment saying
#: whose it is and how it goes away. Empty: there are none.
KNOWN_CYCLES: frozenset[tuple[str, ...]] = frozenset()


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ("realtalk", *path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the ``realtalk`` modules it imports (importing a submodule is not counted as
    importing its parent packages: everything would then depend on ``realtalk/__init__``)."""
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                subs = [f"{target}.{alias.name}" for alias in node.names]
                if node.module is None and any(sub in mods for sub in subs):
                    candidates = subs  # ``from . import x`` imports the submodule x
                else:
                    candidates = [target, *subs]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            graph[name].update(c for c in candidates if c in mods and c != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The groups of modules that import each other (strongly connected components of two or
    more), each sorted, in sorted order (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(tuple(sorted(group)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _describe(group: tuple[str, ...], graph: dict[str, set[str]]) -> str:
    members = set(group)
    edges = [f"    {m} -> {', '.join(sorted(graph[m] & members))}" for m in group]
    return "\n".join([f"cycle of {len(group)}:", *edges])


def test_realtalk_has_no_import_cycle() -> None:
    graph = _graph(_modules())
    new = [group for group in _cycles(graph) if group not in KNOWN_CYCLES]
    assert not new, "import cycles:\n" + "\n".join(_describe(g, graph) for g in new)


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = _graph(_modules())
    # Type-only: the model interface names tools only under TYPE_CHECKING.
    assert "realtalk.tools" in graph["realtalk.realtime.base"]
    # Relative, from a package's __init__.
    assert "realtalk.protocol.events" in graph["realtalk.protocol"]
    # Absolute.
    assert "realtalk.tool_schema" in graph["realtalk.tools"]


def test_cycle_finder_finds_every_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d", "a"}, "f": {"a"}}
    assert _cycles(graph) == [("a", "b", "c"), ("d", "e")]
    assert _cycles({"a": {"b"}, "b": set()}) == []


if __name__ == "__main__":
    all_graph = _graph(_modules())
    groups = _cycles(all_graph)
    for group in groups:
        print(_describe(group, all_graph), "(known)" if group in KNOWN_CYCLES else "")
    print(f"{len(groups)} cycle(s) among {len(all_graph)} modules")
    sys.exit(1 if set(groups) - KNOWN_CYCLES else 0)
