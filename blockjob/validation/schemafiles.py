"""The schema files shipped in blockjob/schemas, loaded once per process without network."""

from __future__ import annotations

import functools
from importlib import resources

import xmlschema
from lxml import etree

# The schema matching a document's root element; anything else is judged as a <domstatus>.
_KINDS = ("domstatus", "blockjobs")

_SCHEMA_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def kind_of(root: etree._Element) -> str:
    return root.tag if root.tag in _KINDS else "domstatus"


def _path(name: str) -> str:
    # The package is installed as plain files (a symlink in the source tree), so the
    # traversable is a real path; includes between the schemas resolve beside it.
    return str(resources.files("blockjob") / "schemas" / name)


@functools.cache
def relaxng(kind: str) -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(_path(f"{kind}.rng"), _SCHEMA_PARSER))


@functools.cache
def xsd(kind: str) -> xmlschema.XMLSchema11:
    # sandbox: includes only from the schema directory; defuse: no entities in schema files.
    return xmlschema.XMLSchema11(_path(f"{kind}.xsd"), allow="sandbox", defuse="always")
