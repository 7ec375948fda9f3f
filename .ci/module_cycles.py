#!/usr/bin/env python3
"""Fails when, in any crate of the workspace, a module uses a module that uses it back.

A module is a source file (`lib.rs` or `main.rs` is the crate root, `a/b.rs` is `a::b`).
A module uses another when its code names it: a `crate::`, `super::` or `self::` path, or a
path starting with one of its own child modules (`mod x;` declares, and `x::item` uses).
Declaring a child (`mod x;`) is not a use. Comments and the inline `#[cfg(test)] mod tests`
block at the end of a file are left out. Cycles are found as the strongly connected
components of the graph of uses, and each is printed with the uses that close it.

    .ci/module_cycles.py [CRATES_DIR]    (default: crates)
"""

import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def modules(src: Path) -> dict[tuple[str, ...], Path]:
    """The modules of a crate's `src` folder, by path below the crate root."""
    found = {}
    for file in src.rglob("*.rs"):
        parts = file.relative_to(src).with_suffix("").parts
        if parts in (("lib",), ("main",)):
            found[()] = file
        elif parts[-1] == "mod":
            found[parts[:-1]] = file
        else:
            found[parts] = file
    return found


def code(file: Path) -> str:
    """The file's code: no comments, no test block at its end."""
    text = file.read_text()
    tests = re.search(r"#\[cfg\(test\)\]\s*mod tests\s*\{", text)
    if tests:
        text = text[: tests.start()]
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return text


def group_items(text: str, start: int) -> list[str]:
    """The first segments of the items of a `{…}` use group opening at `start`."""
    depth, item, items = 0, "", []
    for ch in text[start:]:
        if ch == "{":
            depth += 1
            if depth == 1:
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                items.append(item)
                break
        elif ch == "," and depth == 1:
            items.append(item)
            item = ""
            continue
        item += ch
    firsts = []
    for entry in items:
        match = re.match(r"\s*(" + IDENT + ")", entry)
        if match and match.group(1) != "self":
            firsts.append(match.group(1))
    return firsts


def resolve(path: tuple[str, ...], known) -> tuple[str, ...]:
    """The longest prefix of `path` that is a module (the root at least)."""
    for end in range(len(path), 0, -1):
        if path[:end] in known:
            return path[:end]
    return ()


def uses(module: tuple[str, ...], text: str, known) -> set[tuple[str, ...]]:
    children = {m[-1] for m in known if len(m) == len(module) + 1 and m[:-1] == module}
    declared = set(re.findall(r"\bmod\s+(" + IDENT + r")\s*;", text))
    targets = set()
    pattern = re.compile(r"(?<![A-Za-z0-9_:])(" + IDENT + r")((?:::" + IDENT + r")*)(::\{)?")
    for match in pattern.finditer(text):
        head, rest, group = match.group(1), match.group(2), match.group(3)
        segments = [s for s in rest.split("::") if s]
        if head == "crate":
            base = ()
        elif head == "super":
            base = module[:-1]
            while segments and segments[0] == "super":
                base, segments = base[:-1], segments[1:]
        elif head == "self":
            base = module
        elif head in children and head in declared and (segments or group):
            base, segments = module, [head] + segments
        else:
            continue
        if not segments and not group:
            continue
        paths = [tuple(segments)]
        if group:
            paths = [tuple(segments) + (item,) for item in group_items(text, match.end() - 1)]
        for path in paths:
            target = resolve(base + path, known)
            if target != module:
                targets.add(target)
    return targets


def cycles(graph: dict) -> list[list]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for next_node in graph.get(node, ()):
            if next_node not in index:
                visit(next_node)
                low[node] = min(low[node], low[next_node])
            elif next_node in on_stack:
                low[node] = min(low[node], index[next_node])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return found


def name(crate: str, module: tuple[str, ...]) -> str:
    return "::".join((crate,) + module)


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "crates")
    failed = False
    checked = 0
    for src in sorted(root.glob("*/src")):
        crate = src.parent.name.replace("-", "_")
        known = modules(src)
        graph = {m: uses(m, code(f), known) for m, f in known.items()}
        checked += len(graph)
        for component in cycles(graph):
            failed = True
            members = set(component)
            print(f"cycle among the modules of {crate}:")
            for module in component:
                for target in sorted(graph[module] & members):
                    print(f"  {name(crate, module)} uses {name(crate, target)}")
    if failed:
        return 1
    print(f"no module uses a module that uses it back ({checked} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
