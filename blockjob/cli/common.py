"""What every subcommand does with a file argument: load it or say why not."""

from __future__ import annotations

import sys

from blockjob.errors import StatusXMLError
from blockjob.statusxml.document import StatusDocument, load

# xmllint's habits: 1 also means "needs attention" for recover.
EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


def error(message: str) -> None:
    sys.stderr.write(f"{message}\n")


def load_document(path: str) -> StatusDocument | int:
    """The document, or the exit code after reporting `FILE:LINE: message` on stderr."""
    try:
        doc = load(path)
    except StatusXMLError as exc:
        error(str(exc))
        return EXIT_REJECTED
    except OSError as exc:
        error(f"{path}:0: cannot read: {exc.strerror or exc}")
        return EXIT_USAGE
    for warning in doc.warnings:
        error(f"{warning} (warning)")
    return doc
