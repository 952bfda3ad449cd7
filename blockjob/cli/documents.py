"""What a subcommand does with a status-file argument: load it or say why not."""

from __future__ import annotations

from blockjob.cli.common import EXIT_UNUSABLE, error
from blockjob.errors import InputError, StatusXMLError
from blockjob.inputs import MAX_INPUT_BYTES, display_name, read_input
from blockjob.statusxml.document import StatusDocument, loads

LoadError = InputError | StatusXMLError


def try_load(path: str, max_bytes: int = MAX_INPUT_BYTES) -> StatusDocument | LoadError:
    """The document (`-` is standard input) with its warnings reported on stderr, or the
    error that kept it from loading, reported there as `FILE:LINE: message`."""
    try:
        doc = loads(read_input(path, max_bytes=max_bytes), display_name(path))
    except (InputError, StatusXMLError) as exc:
        error(str(exc))
        return exc
    for warning in doc.warnings:
        error(f"{warning} (warning)")
    return doc


def load_document(path: str, max_bytes: int = MAX_INPUT_BYTES) -> StatusDocument | int:
    """The document, or the exit code after reporting why it cannot be loaded."""
    doc = try_load(path, max_bytes)
    return doc if isinstance(doc, StatusDocument) else EXIT_UNUSABLE
