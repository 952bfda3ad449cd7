"""XSD 1.1 through xmlschema, with each message pointed at the offending element and
completed with what the schema expected there.

xmlschema gets the tree our secure parser already built, so it never reads entities or
fetches anything itself, and it is told not to follow xsi:schemaLocation hints.
"""

from __future__ import annotations

import copy
from typing import Any

from elementpath import XPath2Parser, select
from lxml import etree
from xmlschema import XMLResource, XMLSchemaChildrenValidationError, XMLSchemaValidationError
from xmlschema.exceptions import XMLSchemaKeyError
from xmlschema.validators import XsdAssert

from blockjob.validation import schemafiles
from blockjob.validation.problems import Problem, place

_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def check(root: etree._Element) -> tuple[bool, list[Problem]]:
    schema = schemafiles.xsd(schemafiles.kind_of(root))
    problems: list[Problem] = []
    bare = _without_comments(root)
    # An already built tree; the resource may open nothing (no xi:include, no schemaLocation).
    source = XMLResource(bare, allow="none", defuse="always")  # type: ignore[arg-type]
    try:
        errors = list(schema.iter_errors(source, use_location_hints=False))
    except XMLSchemaKeyError as exc:
        return False, [_unknown_type(root, exc)]
    for error in errors:
        problem = _problem(error, root)
        if problem not in problems:
            problems.append(problem)
    return not problems, problems


def _unknown_type(root: etree._Element, exc: XMLSchemaKeyError) -> Problem:
    """xmlschema (4.3) raises instead of reporting when an element inside <blockjobs> has an
    xsi:type that names no type. xsi:* attributes are not allowed there, so the document is
    invalid; the problem goes to the first element of that part with an xsi:type."""
    part = root.find("blockjobs") if root.tag == "domstatus" else None
    typed = (e for e in (part if part is not None else root).iter() if e.get(_XSI_TYPE))
    return Problem(*place(next(typed, root)), f"xsi:type names no type ({exc.args[0]}); "
                   "xsi:* attributes (XML Schema instance) are not allowed in status XML", "xsd")


def _without_comments(root: etree._Element) -> etree._Element:
    """`root`, or a copy without comments and processing instructions when it has some.

    XSD ignores them, as RelaxNG does, but xmlschema takes one inside an element for a child:
    `<errmsg>a<!-- -->b</errmsg>` "can't have child elements", and the text after one goes
    unchecked. libvirt writes none inside the root, so the copy is a rare path. A copy keeps
    the source lines, and paths count elements only.
    """
    if next(root.iter(etree.Comment, etree.ProcessingInstruction), None) is None:
        return root
    bare = copy.deepcopy(root)
    etree.strip_tags(bare, etree.Comment, etree.ProcessingInstruction)
    return bare


def _problem(error: XMLSchemaValidationError, root: etree._Element) -> Problem:
    element = error.elem if isinstance(error.elem, etree._Element) else root
    message = error.reason or error.message
    if isinstance(error.validator, XsdAssert):
        element, message = _assertion(error.validator, element)
    elif isinstance(error, XMLSchemaChildrenValidationError):
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


def _assertion(assertion: XsdAssert, element: etree._Element) -> tuple[etree._Element, str]:
    """Where an assertion of ours failed, and why: each tests empty(SELECTION), SELECTION being
    the elements in error, and its documentation is the message."""
    selection = assertion.path.removeprefix("empty(").removesuffix(")")
    culprits = select(element, selection,  # type: ignore[arg-type]  # lxml's too
                      namespaces=assertion.parser.namespaces, parser=XPath2Parser)
    notes = assertion.annotation.documentation if assertion.annotation is not None else []
    return culprits[0], " ".join(" ".join((note.text or "").split()) for note in notes)


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
