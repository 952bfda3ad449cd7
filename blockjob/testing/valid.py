"""Schema validation as an assertion: the problems, with line and path, in the message."""

from __future__ import annotations

from blockjob.errors import StatusXMLError
from blockjob.statusxml.document import StatusDocument
from blockjob.testing.golden import as_bytes

_ENGINES = {"both": ("rng", "xsd"), "rng": ("rng",), "xsd": ("xsd",)}


def assert_valid(doc_or_bytes: StatusDocument | bytes, schema: str = "both") -> None:
    """The document (a StatusDocument's dump, or bytes) must satisfy the package's schemas:
    `schema` is "rng" (RelaxNG), "xsd" (XSD 1.1) or "both"."""
    __tracebackhide__ = True
    engines = _ENGINES.get(schema)
    if engines is None:
        raise ValueError(f"schema must be one of {', '.join(_ENGINES)}, not {schema!r}")
    filename = doc_or_bytes.filename if isinstance(doc_or_bytes, StatusDocument) else "<bytes>"
    data = as_bytes(doc_or_bytes)
    # Imported here: the schema engine costs a noticeable time to import, and most users of
    # this package only compare files.
    from blockjob.validation.check import validate_bytes  # noqa: PLC0415

    try:
        report = validate_bytes(data, filename, engines)
    except StatusXMLError as exc:
        raise AssertionError(f"not valid: {exc}") from None
    if report.valid:
        return
    verdicts = ", ".join(f"{name}: {'valid' if ok else 'invalid'}"
                         for name, ok in report.verdicts.items())
    problems = "\n".join(f"  {p.format(filename)} [{p.engine}]" for p in report.problems)
    raise AssertionError(f"{filename}: not valid ({verdicts})\n{problems}")
