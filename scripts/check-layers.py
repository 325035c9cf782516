#!/usr/bin/env python3
"""Check that host/src keeps its layers (declared in host/layers.txt, bottom layer first).

The rule: a module may import (`crate::X`) only from its own layer or a lower one; modules of
one layer must not import each other in a cycle; and no module imports through the crate root
(`crate::Name` where Name is not a module), since lib.rs re-exports hide the real edge.
A module is a top-level `foo.rs` or `foo/` (every .rs file under it) of the src dir; lib.rs
and main.rs are crate roots and are not checked. Every module must be declared in exactly one
layer, and every declared module must exist. Comments and string literals are skipped.

Usage: scripts/check-layers.py [--src DIR] [--layers FILE] [--print | --self-test]
Exits 0 with a one-line summary when the tree is clean, 1 with one line per problem otherwise.
"""
import argparse, contextlib, io, os, re, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IDENT = r"(?:r#)?[A-Za-z_]\w*"
CRATE_PATH = re.compile(r"\bcrate\s*::\s*(\{|\*|" + IDENT + ")")
CHAR = re.compile(r"'(?:[^'\\\n]|\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}|.))'")
RAW = re.compile(r'b?r(#*)"')


def show(path):
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def blank(text):
    """The text with comments and string/char literals turned to spaces (newlines kept)."""
    out, i, n = [], 0, len(text)
    def skip(j):  # blank text[i:j]
        out.append(re.sub(r"[^\n]", " ", text[i:j]))
        return j
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = skip(n if end < 0 else end)
        elif text.startswith("/*", i):  # block comments nest in Rust
            j, depth = i + 2, 1
            while j < n and depth:
                if text.startswith("/*", j): depth, j = depth + 1, j + 2
                elif text.startswith("*/", j): depth, j = depth - 1, j + 2
                else: j += 1
            i = skip(j)
        elif (m := RAW.match(text, i)) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find('"' + m.group(1), m.end())
            i = skip(n if end < 0 else end + 1 + len(m.group(1)))
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = skip(j + 1)
        elif c == "'" and (m := CHAR.match(text, i)):
            i = skip(m.end())
        else:
            out.append(c)
            i += 1
    return "".join(out)


def references(code):
    """(line, name) for each top-level name reached through `crate::`, groups included."""
    line_of = lambda pos: code.count("\n", 0, pos) + 1
    for m in CRATE_PATH.finditer(code):
        if m.group(1) != "{":
            yield line_of(m.start(1)), m.group(1)
            continue
        depth, item_start, j = 1, m.end(1), m.end(1)
        while j <= len(code) and depth:
            ch = code[j] if j < len(code) else "}"
            if ch == "{": depth += 1
            elif ch == "}": depth -= 1
            if depth == 0 or (depth == 1 and ch == ","):
                if (name := re.match(r"\s*(\*|" + IDENT + ")", code[item_start:j])) and name.group(1) != "self":
                    yield line_of(item_start + name.start(1)), name.group(1)
                item_start = j + 1
            j += 1


def parse_layers(path, problems):
    layers, layer_of = [], {}  # [(layer, [modules])], module -> (layer index, line)
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, mods = line.partition(":")
        if not sep or not re.fullmatch(r"\w+", name.strip()):
            problems.append(f"{show(path)}:{number}: expected `layer: module module …`")
            continue
        layers.append((name.strip(), mods.split()))
        for mod in mods.split():
            if mod in layer_of:
                problems.append(f"{show(path)}:{number}: module `{mod}` is declared in two layers")
            layer_of.setdefault(mod, (len(layers) - 1, number))
    return layers, layer_of


def find_cycle(graph, nodes):
    """One cycle [a, b, …, a] among nodes, or None (depth-first search for a back edge)."""
    state, stack = {}, []
    def visit(node):
        state[node] = "open"; stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if nxt not in nodes: continue
            if state.get(nxt) == "open": return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)): return cycle
        state[node] = "done"; stack.pop()
    for node in sorted(nodes):
        if node not in state and (cycle := visit(node)):
            return cycle


def check(src, layers_file, print_map=False):
    """Print the problems (or the summary / the map); return the exit code."""
    src, problems = Path(src), []
    layers, layer_of = parse_layers(layers_file, problems)
    modules = {}  # module -> [.rs files]
    for entry in sorted(src.iterdir()):
        if entry.name in ("lib.rs", "main.rs") or entry.name.startswith("."):
            continue
        if entry.is_dir() and (files := sorted(entry.rglob("*.rs"))):
            modules.setdefault(entry.name, []).extend(files)
        elif entry.suffix == ".rs":
            modules.setdefault(entry.stem, []).append(entry)
    for mod, files in modules.items():
        if mod not in layer_of:
            problems.append(f"{show(files[0])}: module `{mod}` is not declared in any layer of {show(layers_file)}")
    for mod, (_, number) in layer_of.items():
        if mod not in modules:
            problems.append(f"{show(layers_file)}:{number}: module `{mod}` is declared but {show(src)}/{mod}.rs or {mod}/ does not exist")
    graph = {}  # module -> {imported module: "file:line" of its first import}
    for mod, files in modules.items():
        for file in files:
            for line, name in references(blank(file.read_text())):
                where, name = f"{show(file)}:{line}", name.removeprefix("r#")
                if name == mod or mod not in layer_of:
                    continue
                if name not in modules:
                    problems.append(f"{where}: module `{mod}` imports `crate::{name}` through the crate root; import it from its module")
                elif name in layer_of:
                    graph.setdefault(mod, {}).setdefault(name, where)
                    (lm, _), (lx, _) = layer_of[mod], layer_of[name]
                    if lx > lm:
                        problems.append(f"{where}: module `{mod}` (layer {layers[lm][0]}) imports `crate::{name}` (layer {layers[lx][0]}, above it)")
    for index, (layer, mods) in enumerate(layers):
        remaining = {m for m in mods if m in modules and layer_of[m][0] == index}
        while cycle := find_cycle(graph, remaining):  # report a cycle, drop its first module, look again
            problems.append(f"import cycle in layer {layer}: " + " -> ".join(cycle))
            problems += [f"  {graph[a][b]}: `{a}` imports `crate::{b}`" for a, b in zip(cycle, cycle[1:])]
            remaining.discard(cycle[0])
    if print_map:
        for layer, mods in layers:
            print(f"{layer}:")
            for mod in mods:
                imports = sorted(graph.get(mod, {}), key=lambda x: (layer_of[x][0], x))
                print(f"  {mod}" + (f" -> {', '.join(imports)}" if imports else ""))
        return 0
    if problems:
        print("\n".join(problems))
        print(f"layers: {len(problems) - sum(p.startswith('  ') for p in problems)} problem(s)", file=sys.stderr)
        return 1
    edges = sum(len(targets) for targets in graph.values())
    print(f"layers: {len(layers)} layers, {len(modules)} modules, {edges} imports, none upward, no cycles")
    return 0


def self_test():
    """Build fixture trees in a temporary directory and check the outcomes."""
    layers = "# fixture\ndata: budget error\nglue: bindings\napi: host\ncli: cli\n"
    clean = {
        "lib.rs": "pub mod budget;\npub use budget::Charge;\n",
        "error.rs": "pub struct Error;\n",
        "budget.rs": "use crate::error::Error;\npub struct Charge;\n",
        "bindings.rs": "use crate::{budget::Charge,\n    error::{self, Error as E}};\nuse super::x;\n",
        "host.rs": "pub(crate) use crate::bindings;\n#[cfg(test)]\nmod tests { use crate::budget::Charge; }\n",
        "cli/mod.rs": "mod run;\n",
        "cli/run/deep.rs": "use crate::host::Host;\nuse self::inner::X;\n",
    }
    quiet = ("budget.rs", "use crate::error::Error;\n"
             "// use crate::host::Host;\n/// crate::host\n//! crate::host\n/* a /* nested */ crate::host */\n"
             "let q = '\"'; let s = \"use crate::host::Host; \\\" crate::host\";\n"
             "let r = r#\"crate::{budget::Charge, host::Host}\"#; let l: &'static str = r\"crate::host\";\n")
    cases = [  # (what, changed files, layers, exit code, expected output fragments)
        ("clean tree passes", {}, layers, 0, ["4 layers, 5 modules, 6 imports, none upward, no cycles"]),
        ("upward import fails", {"budget.rs": "pub struct Charge;\nuse crate::host::Host;\n"}, layers, 1,
         ["budget.rs:2: module `budget` (layer data) imports `crate::host` (layer api, above it)"]),
        ("upward import in cfg(test) fails", {"error.rs": "#[cfg(test)]\nmod tests {\n    use crate::bindings;\n}\n"}, layers, 1,
         ["error.rs:3: module `error` (layer data) imports `crate::bindings` (layer glue, above it)"]),
        ("grouped upward import fails", {"error.rs": "use crate::{budget::Charge,\n  host::Host};\n"}, layers, 1,
         ["error.rs:2: module `error` (layer data) imports `crate::host` (layer api, above it)"]),
        ("comments and strings pass", dict([quiet]), layers, 0, ["none upward"]),
        ("char literal hides nothing", {"budget.rs": "let q = '\"';\nuse crate::host::Host;\n"}, layers, 1,
         ["budget.rs:2: module `budget` (layer data)"]),
        ("root re-export fails", {"bindings.rs": "use crate::Charge;\n"}, layers, 1,
         ["bindings.rs:1: module `bindings` imports `crate::Charge` through the crate root"]),
        ("intra-layer cycle fails", {"error.rs": "use crate::budget::Charge;\n"}, layers, 1,
         ["import cycle in layer data: budget -> error -> budget", "budget.rs:1: `budget` imports `crate::error`",
          "error.rs:1: `error` imports `crate::budget`"]),
        ("undeclared module fails", {"extra.rs": "\n"}, layers, 1, ["extra.rs: module `extra` is not declared"]),
        ("missing module fails", {}, layers.replace("host", "host ghost"), 1, ["module `ghost` is declared but"]),
        ("double declaration fails", {}, layers + "top: host\n", 1, ["module `host` is declared in two layers"]),
    ]
    failed = 0
    for what, changes, layer_text, want_code, fragments in cases:
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in {**clean, **changes}.items():
                (Path(tmp) / "src" / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / "src" / name).write_text(text)
            (Path(tmp) / "layers.txt").write_text(layer_text)
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                code = check(Path(tmp) / "src", Path(tmp) / "layers.txt")
        ok = code == want_code and all(f in out.getvalue() for f in fragments)
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            print(f"     exit {code}, wanted {want_code}; output:\n" + "".join(f"     | {l}\n" for l in out.getvalue().splitlines()))
    print(f"self-test: {len(cases) - failed} of {len(cases)} passed")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", type=Path, default=ROOT / "host" / "src")
    parser.add_argument("--layers", type=Path, default=ROOT / "host" / "layers.txt")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--print", action="store_true", help="print each layer's modules and their imports")
    mode.add_argument("--self-test", action="store_true", help="check the checker on fixture trees")
    args = parser.parse_args()
    sys.exit(self_test() if args.self_test else check(args.src, args.layers, args.print))


if __name__ == "__main__":
    main()
