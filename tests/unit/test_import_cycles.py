"""No import cycles through the OpenAI client, the protocol package, the job context and the
runner/WebRTC pair, counting imports made only for type checking too: a module that needs
another's type names it through a protocol of its own instead (the client's helpers use
``ClientState``, the model interface ``AgentSpec``). The agent/session/tools/handoff group is
still one cycle (through realtime/base.py's type imports too), left to its owners."""

from __future__ import annotations

import ast
from pathlib import Path

import realtalk

ROOT = Path(realtalk.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ("realtalk", *path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _graph(mods: dict[str, Path]) -> dict[str, set[str]]:
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


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


GUARDED = ("realtalk.plugins", "realtalk.protocol", "realtalk.job", "realtalk.runner")
GUARDED_MODULES = ("realtalk.transports.webrtc",)


def test_the_client_protocol_and_runner_are_in_no_import_cycle() -> None:
    graph = _graph(_modules())
    guarded = {name for name in graph if name.startswith(GUARDED) or name in GUARDED_MODULES}
    # Cut every edge into or out of the rest, then look for a cycle among what is left plus
    # the guarded modules' own paths through the rest.
    for start in sorted(guarded):
        seen: set[str] = set()
        stack = [start]
        while stack:
            node = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    raise AssertionError(f"{start} imports itself through {node}")
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)


def test_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
