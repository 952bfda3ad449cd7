"""Time schema validation of one status file per schema and engine:
`python -m bench.validate_schemas [FILE]`.

Default input: ../shared/libvirt-qemustatusxml2xmldata/blockjob-blockdev-in.xml (27 KB).
domstatus.* judge the whole file; blockjobs.* judge its <blockjobs> element alone.
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
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def _ms(action: Callable[[], object], rounds: int) -> str:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return f"median {statistics.median(times):7.3f} ms   min {min(times):7.3f} ms"


def _once(action: Callable[[], object]) -> str:
    start = time.perf_counter()
    action()
    return f"{(time.perf_counter() - start) * 1000:7.1f} ms"


def _judge(kind: str, root: etree._Element) -> None:
    print(f"load {kind}.rng, lxml            {_once(lambda: schemafiles.relaxng(kind))}")
    print(f"load {kind}.xsd, xmlschema       {_once(lambda: schemafiles.xsd(kind))}")
    try:
        etree.XMLSchema(file=str(SCHEMAS / f"{kind}.xsd"))
    except etree.XMLSchemaParseError:
        print(f"{kind}.xsd, lxml XMLSchema      not applicable (XSD 1.1)")
    print(f"{kind}.rng, lxml RelaxNG        {_ms(lambda: rng.check(root), 200)}")
    print(f"{kind}.xsd, xmlschema           {_ms(lambda: xsd.check(root), 50)}")


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT / "blockjob-blockdev-in.xml"
    data = path.read_bytes()
    whole = parse(data, str(path))
    fragment = parse(etree.tostring(whole.find("blockjobs")), "<blockjobs>")  # type: ignore[arg-type]
    print(f"input {path.name}: {len(data)} bytes")
    print(f"parse (blockjob.xmlparse)            {_ms(lambda: parse(data, 'x'), 200)}")
    _judge("domstatus", whole)
    _judge("blockjobs", fragment)
    print(f"validate_bytes, both, whole file     {_ms(lambda: validate_bytes(data), 50)}")


if __name__ == "__main__":
    main()
