#!/usr/bin/env python3
"""Finds import circles between the crate's modules: for every module, the graph of its
children (a child stands for everything under it) with an edge where a file under one names
(`use crate::…`, `use super::…`, or a `crate::…` path in code) an item under another. A circle
there is two parts of the source that each need the other. A module naming its own ancestor or
descendant is no edge: a module is built from its children.

Usage: scripts/check_module_cycles.py [SRC]   (default: src/ beside this script)
Exit 1 and a line per circle (with the files and the paths that make each edge) if any.
"""
import re
import sys
from collections import defaultdict
from pathlib import Path


def module_of(src: Path, file: Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def without_tests(text: str) -> str:
    """The file without its `#[cfg(test)] mod tests { … }`, which may use anything."""
    at = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    return text[: at.start()] if at else text


def used_paths(text: str, module: tuple):
    """Every absolute module path (a tuple) the code names, with the text that names it."""
    # A `use` tree, flattened: `use a::{b, c::{d, e}};` → a::b, a::c::d, a::c::e.
    def expand(tree: str):
        tree = tree.strip()
        brace = tree.find("{")
        if brace < 0:
            path = tree.split(" as ")[0].strip()
            return [path[: -len("::self")] if path.endswith("::self") else path]
        prefix, inner = tree[:brace], tree[brace + 1 : tree.rfind("}")]
        items, depth, start = [], 0, 0
        for i, ch in enumerate(inner):
            depth += ch == "{"
            depth -= ch == "}"
            if ch == "," and depth == 0:
                items.append(inner[start:i])
                start = i + 1
        items.append(inner[start:])
        return [p for item in items if item.strip() for p in expand(prefix + item.strip())]

    found = []
    for tree in re.findall(r"\buse\s+([^;]+);", text, re.S):
        for path in expand(" ".join(tree.split())):
            found.append(path)
    found += re.findall(r"(?<![\w:])(crate(?:::\w+)+)", text)
    # `super` is the parent of the file's module (a mod.rs file's module is its folder).
    here = module
    for path in found:
        parts = path.replace(" ", "").split("::")
        if parts[0] == "crate":
            yield tuple(parts[1:]), path
        elif parts[0] == "super":
            base = list(here)
            while parts and parts[0] == "super":
                base = base[:-1]
                parts = parts[1:]
            yield tuple(base + parts), path
        elif parts[0] == "self":
            yield tuple(list(here) + parts[1:]), path


def main() -> int:
    args = sys.argv[1:]
    src = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "src"
    files = sorted(src.rglob("*.rs"))
    modules = {module_of(src, f) for f in files}
    # Only the library's modules: main.rs is the binary, a crate of its own.
    edges = defaultdict(set)  # (parent, child_a, child_b) → {(file, path)}
    for file in files:
        if file.name == "main.rs":
            continue
        module = module_of(src, file)
        text = without_tests(file.read_text())
        for target, written in used_paths(text, module):
            # The deepest module the path names (the rest is an item inside it).
            while target and target not in modules:
                target = target[:-1]
            if not target or target == module:
                continue
            common = 0
            while common < min(len(module), len(target)) and module[common] == target[common]:
                common += 1
            if common in (len(module), len(target)):
                continue  # an ancestor or a descendant
            parent = module[:common]
            edges[(parent, module[common], target[common])].add((str(file.relative_to(src.parent)), written))
    graph = defaultdict(lambda: defaultdict(set))
    for (parent, a, b) in edges:
        graph[parent][a].add(b)
    circles = []
    for parent, children in graph.items():
        # Every strongly connected set of children with more than one member is a circle.
        index, low, stack, on, counter = {}, {}, [], set(), [0]

        def visit(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in children.get(v, ()):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                part = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    part.append(w)
                    if w == v:
                        break
                if len(part) > 1:
                    circles.append((parent, sorted(part)))

        for v in list(children):
            if v not in index:
                visit(v)
    for parent, part in sorted(circles):
        where = "::".join(("crate",) + parent)
        print(f"circle in {where}: {' <-> '.join(part)}")
        for a in part:
            for b in part:
                for file, written in sorted(edges.get((parent, a, b), ())):
                    print(f"    {a} -> {b}: {file} names {written}")
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
