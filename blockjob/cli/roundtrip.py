"""`blockjob roundtrip FILE`: print the bytes saving the loaded document would write."""

from __future__ import annotations

import argparse
import sys

from blockjob.cli.common import EXIT_OK, add_max_size
from blockjob.cli.documents import load_document


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a libvirt status XML file (`-`: standard input)")
    add_max_size(parser)


def run(args: argparse.Namespace) -> int:
    doc = load_document(args.file, args.max_size)
    if isinstance(doc, int):
        return doc
    sys.stdout.buffer.write(doc.dumps())
    sys.stdout.flush()
    return EXIT_OK
