"""Time schema validation of one status file per engine: `python -m bench.validate_schemas [FILE]`.

Default input: ../shared/libvirt-qemustatusxml2xmldata/blockjob-blockdev-in.xml (27 KB).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from blockjob.validate import validate_bytes
from blockjob.validation import rng, schemafiles, xsd
from blockjob.xmlparse import parse

DEFAULT = Path(__file__).resolve().parents[2] / "shared/libvirt-qemustatusxml2xmldata"


def _ms(action: Callable[[], object], rounds: int = 200) -> str:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return f"median {statistics.median(times):7.3f} ms  min {min(times):7.3f} ms"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT / "blockjob-blockdev-in.xml"
    data = path.read_bytes()
    root = parse(data, str(path))
    for name, load in (("domstatus.rng, lxml", schemafiles.relaxng),
                       ("domstatus.xsd, xmlschema", schemafiles.xsd)):
        start = time.perf_counter()
        load("domstatus")
        print(f"load {name:27}{(time.perf_counter() - start) * 1000:8.1f} ms (once per process)")
    try:
        etree.XMLSchema(file=str(Path(schemafiles.__file__).parents[1] / "schemas/domstatus.xsd"))
    except etree.XMLSchemaParseError as exc:
        print(f"lxml XMLSchema: not applicable, XSD 1.1 ({str(exc)[:60]}...)")
    print(f"input {path.name}: {len(data)} bytes")
    print(f"parse (blockjob.xmlparse)       {_ms(lambda: parse(data, 'x'))}")
    print(f"RelaxNG, lxml                   {_ms(lambda: rng.check(root))}")
    print(f"XSD 1.1, xmlschema              {_ms(lambda: xsd.check(root), 50)}")
    print(f"validate_bytes rng+xsd, total   {_ms(lambda: validate_bytes(data), 50)}")


if __name__ == "__main__":
    main()
