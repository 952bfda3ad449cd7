"""What a subcommand does with a status-file argument: load it or say why not."""

from __future__ import annotations

from blockjob.cli.common import EXIT_REJECTED, EXIT_USAGE, error
from blockjob.errors import StatusXMLError
from blockjob.statusxml.document import StatusDocument, load


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
