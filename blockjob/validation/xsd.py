"""XSD 1.1 through xmlschema, with each message pointed at the offending element and
completed with what the schema expected there.

xmlschema gets the tree our secure parser already built, so it never reads entities or
fetches anything itself.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from xmlschema import XMLResource, XMLSchemaChildrenValidationError, XMLSchemaValidationError

from blockjob.validation import schemafiles
from blockjob.validation.problems import Problem, place


def check(root: etree._Element) -> tuple[bool, list[Problem]]:
    schema = schemafiles.xsd(schemafiles.kind_of(root))
    problems: list[Problem] = []
    # An already built tree; the resource may open nothing (no xi:include, no schemaLocation).
    source = XMLResource(root, allow="none", defuse="always")  # type: ignore[arg-type]
    for error in schema.iter_errors(source):
        problem = _problem(error, root)
        if problem not in problems:
            problems.append(problem)
    return not problems, problems


def _problem(error: XMLSchemaValidationError, root: etree._Element) -> Problem:
    element = error.elem if isinstance(error.elem, etree._Element) else root
    message = error.reason or error.message
    if isinstance(error, XMLSchemaChildrenValidationError):
        child = error.invalid_child
        if isinstance(child, etree._Element):
            element = child
            message = _unexpected_child(child, error.validator)
        elif "expected" not in message:
            message = f"{message}; {_allowed_children(error.validator)}"
    elif "attribute not allowed" in message:
        names = _names(getattr(error.validator, "keys", lambda: ())())
        message = f"{message}; allowed attributes: {names or 'none'}"
    line, path = place(element)
    return Problem(line, path, message.rstrip("."), "xsd")


def _unexpected_child(child: etree._Element, model: Any) -> str:
    previous = child.getprevious()
    while previous is not None and not isinstance(previous.tag, str):
        previous = previous.getprevious()
    where = f"after <{_tag(previous)}>" if previous is not None else "as first child"
    return f"element <{_tag(child)}> is not allowed here ({where}); {_allowed_children(model)}"


def _tag(element: etree._Element) -> str:
    return etree.QName(element).text


def _allowed_children(model: Any) -> str:
    """The children the parent's content model names, in schema order."""
    names = _names(element.name for element in model.iter_elements())
    return f"expected children in this order: {names}" if names else "no children expected"


def _names(names: Any) -> str:
    unique = list(dict.fromkeys(name if name else "any element" for name in names))
    return ", ".join(unique)
