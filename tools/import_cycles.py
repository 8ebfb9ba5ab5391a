"""Fails if a package's modules import each other in a cycle, counting every import statement.

Why a check of its own: import-linter's contracts say who may import whom between layers and
siblings, but a cycle inside one layer, or through a package's ``__init__``, passes them (its
``acyclic_siblings`` contract too: ``tasks/__init__`` and ``tasks.auth`` importing each other
is kept). A cycle is what makes an import order matter, and what a lazy or type-only import
hides until someone hoists it. grimp (import-linter's graph) reads every import statement of a module: at
its top, inside functions and under ``TYPE_CHECKING``; this looks for cycles among the modules
of each package given (by default the service's and the local engine's). Importing a module
of another subpackage first runs that subpackage's ``__init__``, so such an import counts as
an import of the ``__init__`` too: that is how hoisting a lazy import can break start-up with
no loop among the import statements themselves. (A package's own modules do not count their
``__init__``: Python has it half-initialised already when they run.)

Each knot of modules that import each other (a strongly connected set) is printed as loops
of imports, the shortest through each of its modules that no loop printed before goes
through, with the line of each import: together they name every module of the knot.

usage: python tools/import_cycles.py [PACKAGE ...]
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise

import grimp

PACKAGES = ("mesg_pusher", "mesg_local_engine")

Graph = Mapping[str, frozenset[str]]


def _packages_of(module: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b"]``."""
    parts = module.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def import_graph(packages: Sequence[str]) -> tuple[grimp.ImportGraph, Graph]:
    """grimp's graph of ``packages`` (type-only imports included), and each module's imports
    among them, the ``__init__`` of other subpackages that they run included."""
    graph = grimp.build_graph(*packages, cache_dir=None)
    edges: dict[str, frozenset[str]] = {}
    for module in graph.modules:
        imported = set(graph.find_modules_directly_imported_by(module))
        own = set(_packages_of(module))
        for target in list(imported):
            imported.update(p for p in _packages_of(target) if p not in own and p in graph.modules)
        imported.discard(module)
        edges[module] = frozenset(imported)
    return graph, edges


def knots(edges: Graph) -> list[list[str]]:
    """The strongly connected sets of two or more modules (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(edges[root])))]
        while work:
            module, successors = work[-1]
            successor = next(successors, None)
            if successor is not None:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(edges[successor]))))
                elif successor in on_stack:
                    low[module] = min(low[module], index[successor])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                knot = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    knot.append(member)
                    if member == module:
                        break
                if len(knot) > 1:
                    found.append(sorted(knot))
    return sorted(found)


def shortest_loop(edges: Graph, knot: Iterable[str], start: str) -> list[str]:
    """The shortest import loop from ``start`` back to it inside the knot: ``[start, b, ..., start]``."""
    inside = set(knot)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for successor in sorted(edges[module] & inside):
            if successor == start:
                loop = [module]
                while loop[-1] != start:
                    loop.append(came_from[loop[-1]])
                return [start, *reversed(loop[:-1]), start]
            if successor not in came_from:
                came_from[successor] = module
                queue.append(successor)
    raise AssertionError(f"{start} is in a knot but on no loop")  # a knot always has one


def describe(graph: grimp.ImportGraph, edges: Graph, knot: list[str]) -> str:
    """The knot's loops, each import with the line that makes it."""
    lines = [f"{len(knot)} modules import each other in a cycle: {', '.join(knot)}"]
    covered: set[str] = set()
    for start in knot:
        if start in covered:
            continue
        loop = shortest_loop(edges, knot, start)
        covered.update(loop)
        lines.append(f"  a loop of {len(loop) - 1}:")
        for importer, imported in pairwise(loop):
            details = graph.get_import_details(importer=importer, imported=imported)
            if details:
                where = f"line {details[0]['line_number']}: {details[0]['line_contents']}"
            else:  # an import of one of its modules runs the package's __init__
                where = "imports one of its modules, which runs it first"
            lines.append(f"    {importer} -> {imported}    ({where})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    packages = list(argv if argv is not None else sys.argv[1:]) or list(PACKAGES)
    graph, edges = import_graph(packages)
    found = knots(edges)
    for knot in found:
        print(describe(graph, edges, knot), file=sys.stderr)
    if found:
        print(f"{len(found)} import cycle(s) in {', '.join(packages)}", file=sys.stderr)
        return 1
    imports = sum(len(imported) for imported in edges.values())
    print(f"no import cycle in {', '.join(packages)} ({len(edges)} modules, {imports} imports between them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
