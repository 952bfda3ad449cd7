"""A pydantic-xml model of `<blockjobs>`: what a user of a generic binding would write.

It covers what blockjob.model covers (job attributes, disk binding, orphan chains, commit,
create and backup data, node names down the backing chain); children are matched in any
order, as libvirt reads them.
"""

# pydantic-xml is an optional [bench] extra: without it the base classes are untyped.
# mypy: disable-error-code="misc, import-not-found, unused-ignore"

from __future__ import annotations

from pydantic_xml import BaseXmlModel, attr, element, wrapped

_ANY_ORDER = "unordered"


class NodeName(BaseXmlModel, tag="nodename"):
    type: str = attr()
    name: str = attr()


class Source(BaseXmlModel, tag="source", search_mode=_ANY_ORDER):
    file: str | None = attr(default=None)
    dev: str | None = attr(default=None)
    protocol: str | None = attr(default=None)
    name: str | None = attr(default=None)
    index: str | None = attr(default=None)
    nodenames: list[NodeName] = wrapped("privateData/nodenames", element(default_factory=list))


class Format(BaseXmlModel, tag="format"):
    type: str = attr()


class BackingStore(BaseXmlModel, tag="backingStore", search_mode=_ANY_ORDER):
    type: str | None = attr(default=None)
    index: str | None = attr(default=None)
    format: Format | None = element(default=None)
    source: Source | None = element(default=None)
    backing: BackingStore | None = element(default=None)


class Image(BaseXmlModel, search_mode=_ANY_ORDER):
    type: str = attr()
    format: str = attr()
    source: Source = element()
    backing: BackingStore | None = element(default=None)


class Chains(BaseXmlModel, tag="chains", search_mode=_ANY_ORDER):
    disk: Image | None = element(tag="disk", default=None)
    mirror: Image | None = element(tag="mirror", default=None)


class Disk(BaseXmlModel, tag="disk"):
    dst: str = attr()
    mirror: str | None = attr(default=None)


class NodeRef(BaseXmlModel):
    node: str = attr()


class Bitmap(BaseXmlModel, tag="bitmap"):
    name: str = attr()


class Create(BaseXmlModel, tag="create"):
    mode: str | None = attr(default=None)


class BlockJob(BaseXmlModel, tag="blockjob", search_mode=_ANY_ORDER):
    name: str = attr()
    type: str = attr()
    state: str = attr()
    newstate: str | None = attr(default=None)
    brokentype: str | None = attr(default=None)
    jobflags: str | None = attr(default=None)
    shallownew: str | None = attr(default=None)
    errmsg: str | None = element(default=None)
    disk: Disk | None = element(default=None)
    chains: Chains | None = element(default=None)
    base: NodeRef | None = element(tag="base", default=None)
    top: NodeRef | None = element(tag="top", default=None)
    topparent: NodeRef | None = element(tag="topparent", default=None)
    delete_committed_images: str | None = element(tag="deleteCommittedImages", default=None)
    disabled_base_bitmaps: list[Bitmap] = wrapped(
        "disabledBaseBitmaps", element(default_factory=list)
    )
    create: Create | None = element(default=None)
    src: Image | None = element(tag="src", default=None)
    store: Image | None = element(tag="store", default=None)
    bitmap: Bitmap | None = element(default=None)


class BlockJobs(BaseXmlModel, tag="blockjobs"):
    active: str = attr()
    jobs: list[BlockJob] = element(default_factory=list)
