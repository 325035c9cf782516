"""What a WebAssembly component needs of wasmtime's pooling allocator: its core module
instances, memories and tables (defined, not imported), each memory's initial and maximum
size in 64 KiB pages, and each table's initial and maximum elements.

Usage: python3 scripts/component-limits.py COMPONENT.wasm

It reads the binary format directly (no dependencies), counting what wasmtime counts: each
`(core instance (instantiate ...))`, in this component and in the components it instantiates.
"""

import sys
from dataclasses import dataclass, field


class Reader:
    def __init__(self, data: bytes, at: int = 0):
        self.data, self.at = data, at

    def byte(self) -> int:
        self.at += 1
        return self.data[self.at - 1]

    def u(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    def bytes(self, n: int) -> bytes:
        self.at += n
        return self.data[self.at - n : self.at]

    def name(self) -> str:
        return self.bytes(self.u()).decode()

    def done(self) -> bool:
        return self.at >= len(self.data)


def limits(r: Reader):
    """`(flags, min, max or None)` of a memory or table type."""
    flags = r.byte()
    low = r.u()
    high = r.u() if flags & 1 else None
    if flags & 0x08:  # custom page size
        r.u()
    return flags, low, high


def reftype(r: Reader) -> str:
    b = r.byte()
    if b in (0x63, 0x64):  # (ref null? ht)
        r.u()
        return "ref"
    return {0x70: "funcref", 0x6F: "externref"}.get(b, hex(b))


@dataclass
class Module:
    size: int
    memories: list = field(default_factory=list)  # (min pages, max pages, imported)
    tables: list = field(default_factory=list)  # (type, min, max, imported)


def parse_module(data: bytes) -> Module:
    module = Module(len(data))
    r = Reader(data, 8)
    while not r.done():
        sid, size = r.byte(), r.u()
        body = Reader(r.bytes(size))
        if sid == 2:  # imports
            for _ in range(body.u()):
                body.name(), body.name()
                kind = body.byte()
                if kind == 0x00:
                    body.u()
                elif kind == 0x01:
                    t = reftype(body)
                    module.tables.append((t, *limits(body)[1:], True))
                elif kind == 0x02:
                    module.memories.append((*limits(body)[1:], True))
                elif kind == 0x03:
                    body.byte(), body.byte()
                elif kind == 0x04:
                    body.byte(), body.u()
        elif sid == 4:  # tables
            for _ in range(body.u()):
                if body.data[body.at] == 0x40:
                    raise NotImplementedError("table with an initializer")
                t = reftype(body)
                module.tables.append((t, *limits(body)[1:], False))
        elif sid == 5:  # memories
            for _ in range(body.u()):
                module.memories.append((*limits(body)[1:], False))
    return module


@dataclass
class Component:
    modules: list = field(default_factory=list)  # core module index space: Module or None
    components: list = field(default_factory=list)  # component index space
    instantiations: list = field(default_factory=list)  # module indices instantiated
    component_instantiations: list = field(default_factory=list)


def parse_component(data: bytes) -> Component:
    c = Component()
    r = Reader(data, 8)
    while not r.done():
        sid, size = r.byte(), r.u()
        payload = r.bytes(size)
        body = Reader(payload)
        if sid == 1:
            c.modules.append(parse_module(payload))
        elif sid == 4:
            c.components.append(parse_component(payload))
        elif sid == 2:  # core instances
            for _ in range(body.u()):
                kind = body.byte()
                if kind == 0x00:
                    c.instantiations.append(body.u())
                    for _ in range(body.u()):
                        body.name(), body.byte(), body.u()
                else:
                    for _ in range(body.u()):
                        body.name(), body.byte(), body.u()
        elif sid == 5:  # component instances
            for _ in range(body.u()):
                kind = body.byte()
                if kind == 0x00:
                    c.component_instantiations.append(body.u())
                    for _ in range(body.u()):
                        body.name()
                        if body.byte() == 0x00:
                            body.byte()
                        body.u()
                else:
                    for _ in range(body.u()):
                        body.name()
                        if body.byte() == 0x00:
                            body.byte()
                        body.u()
        elif sid == 6:  # aliases: a core module alias takes a core module index
            for _ in range(body.u()):
                sort = body.byte()
                core_sort = body.byte() if sort == 0x00 else None
                target = body.byte()
                if target == 0x00:
                    body.u(), body.name()
                elif target == 0x01:
                    body.u(), body.name()
                else:
                    body.u(), body.u()
                if sort == 0x00 and core_sort == 0x11:
                    c.modules.append(None)
                if sort == 0x04:
                    c.components.append(None)
        elif sid == 10 or sid == 11:
            pass  # imported modules or components would shift the index spaces; none here
    return c


def instantiated(c: Component):
    """Every core module instantiated, transitively."""
    for index in c.instantiations:
        yield index, c.modules[index]
    for index in c.component_instantiations:
        child = c.components[index]
        if child is not None:
            yield from instantiated(child)


def main(path: str) -> None:
    data = open(path, "rb").read()
    top = parse_component(data)
    instances = list(instantiated(top))
    memories, tables = [], []
    print(f"{path}: {len(data):,} bytes, {len(top.modules)} core modules")
    for n, (index, module) in enumerate(instances):
        if module is None:
            print(f"  instance {n}: aliased module {index}")
            continue
        own_m = [m for m in module.memories if not m[2]]
        own_t = [t for t in module.tables if not t[3]]
        memories += own_m
        tables += own_t
        print(
            f"  instance {n}: module {index} ({module.size:,} bytes)"
            f" memories {[(lo, hi) for lo, hi, _ in own_m]}"
            f" tables {[(t, lo, hi) for t, lo, hi, _ in own_t]}"
            f" imports {len([m for m in module.memories if m[2]])} memories,"
            f" {len([t for t in module.tables if t[3]])} tables"
        )
    print(f"core instances: {len(instances)}")
    print(f"memories defined: {len(memories)} (initial, maximum pages): {[(lo, hi) for lo, hi, _ in memories]}")
    print(f"tables defined: {len(tables)} (type, initial, maximum elements): {[t[:3] for t in tables]}")


if __name__ == "__main__":
    for path in sys.argv[1:]:
        main(path)
