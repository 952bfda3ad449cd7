"""A whole status file: the jobs as a model, every other byte as it was read.

Only `<blockjobs>` is re-serialized on write. The rest of the file (libvirt's
warning comment, private data, the embedded `<domain>`) is kept byte for byte,
except a disk chain that the caller replaced through `set_disk_chain`.
"""

from __future__ import annotations

import functools
import re
from itertools import chain, compress
from operator import is_, is_not
from pathlib import Path
from typing import NamedTuple

from lxml import etree

from blockjob.element import Node
from blockjob.errors import StatusXMLError
from blockjob.inputs import MAX_INPUT_BYTES, read_file
from blockjob.model import ACTIVE_STATES, BlockJob, StorageSource
from blockjob.statusxml import asread
from blockjob.statusxml.disks import Disk, DiskRefs, read_disk_at, read_disks
from blockjob.statusxml.lazyimages import LoadedBlockjobs
from blockjob.statusxml.mapping import node_references
from blockjob.statusxml.node import (
    TRUSTED_PARSER,
    compiled_xpath,
    first_children,
    kept_node,
    write_node,
    written_as_is,
)
from blockjob.statusxml.parse import parse
from blockjob.statusxml.reader import ReadContext, read_jobs
from blockjob.statusxml.sources import backing_node, top_source_node
from blockjob.statusxml.spans import (
    LAST_LINE,
    child_of_root,
    element_span,
    line_end,
    line_start,
    own_line,
    start_tag_end,
    whole_lines,
)
from blockjob.statusxml.writer import JobText, job_text, job_texts_as_read, write_blockjobs

# Where libvirt puts `<blockjobs>` when a file from before 3.9 has none: before these.
_AFTER_BLOCKJOBS = (
    "slirp", "agentTimeout", "backups", "originalMemlock", "preMigrationMemlock", "domain",
)


def _first_name(domain: etree._Element) -> etree._Element | None:
    """The domain's first `<name>`: its first child, as libvirt writes it, found without a
    tag-filtered iterator (whose set-up costs more than reading that child)."""
    first = domain[0] if len(domain) else None
    if first is not None and first.tag == "name":
        return first
    return next(domain.iterchildren("name"), None)


# The root's children a load reads, found by one query walked in C (a loop over the root's
# dozen or more children makes a proxy and a tag string for each; find() parses its path on
# every call): the first `<domain>` and `<monitor>`, and the first two `<blockjobs>`. There
# is a second one only when two come back with one tag (see `_extra_blockjobs`).
_TOP = compiled_xpath("domain[1] | blockjobs[position() <= 2] | monitor[1]")


def _top(root: etree._Element) -> tuple[dict[object, etree._Element], bool]:
    """The first of each of `_TOP`'s children by tag, and whether there is another
    `<blockjobs>`."""
    found = _TOP(root)
    assert isinstance(found, list)
    top = {element.tag: element for element in reversed(found)}  # the first of each wins
    return top, len(found) > len(top)


def _anchor(root: etree._Element) -> etree._Element | None:
    """Where `<blockjobs>` goes in a file that has none: before the first of these."""
    top = first_children(root)
    return next((top[tag] for tag in _AFTER_BLOCKJOBS if tag in top), None)


def _root(root: etree._Element) -> etree._Element:
    return root


def _sort_key(job: BlockJob) -> bytes:
    return job.name.encode("utf-8", "surrogateescape")


class StatusDocument:
    """A loaded `<domstatus>` document. Build one with `load` or `loads`."""

    def __init__(self, data: bytes, filename: str) -> None:
        self.filename = filename
        # The last dump, with each job's text and the very job object written: a job is an
        # immutable value, so its text is a function of it (docs/performance.md, "Save").
        self._dumped: _Dump | None = None
        self._load(data)

    def _load(self, data: bytes) -> None:
        root = parse(data, self.filename)
        if root.tag != "domstatus":
            raise StatusXMLError(
                self.filename,
                root.sourceline,
                f"root element is <{root.tag!s}>, expected <domstatus>",
            )
        top, more_blockjobs = _top(root)
        domain = top.get("domain")
        blockjobs = top.get("blockjobs")
        monitor = top.get("monitor")
        refs = DiskRefs(domain)
        self._targets = frozenset(refs.elements)
        self._copy_mirror = refs.copy_mirror
        self._mirror_images = refs.mirror_images
        # Where each disk's start tag ends: enough to read a disk from its own bytes later.
        self._disk_lines = {dev: disk.sourceline or 0 for dev, disk in refs.elements.items()}
        self._read_disks: dict[str, Disk | None] = {}
        self._full_disks: dict[str, Disk] | None = None
        line = blockjobs.sourceline if blockjobs is not None else None
        self._loaded_blockjobs = LoadedBlockjobs(data, line or 1)
        ctx = ReadContext(self.filename, refs, self._loaded_blockjobs)
        every = [blockjobs] if blockjobs is not None else []
        # libvirt reads the jobs of every `<blockjobs>` (`./blockjobs/blockjob`), and writes
        # them all in one: a second one is merged into the first on the next dump.
        self._extra = (_extra_blockjobs(root, blockjobs, domain)
                       if more_blockjobs and blockjobs is not None else ())
        every += (root[extra.at] for extra in self._extra)
        jobs = read_jobs(every, ctx)
        ctx.warnings += (f"{self.filename}:{extra.line}: another <blockjobs>: its jobs are "
                         "read, and written into the first" for extra in self._extra)
        self._jobs = {job.name: job for job in jobs}
        self._loaded_jobs = tuple(jobs)  # in the order read: a first dump may write them as read
        self.warnings: tuple[str, ...] = tuple(ctx.warnings)
        self.monitor_path = monitor.get("path") if monitor is not None else None
        name = _first_name(domain) if domain is not None else None
        self.domain_name = name.text if name is not None else None

        # Where `<blockjobs>` goes in the bytes only matters when the file is written back,
        # so it is looked for on the first dump: a daemon restart loads every file, and
        # writes only those whose jobs change.
        self._data = data
        self._split: tuple[bytes, bytes] | None = None
        self._section: bytes | None = None  # `<blockjobs>` as loaded, until the first dump
        # Once split: the lines of `<blockjobs>` and of what was cut above the domain, and,
        # counted when first asked for (`_tail_line`), the first line of the tail as loaded.
        self._cut_lines = 0
        self._tail_line_counted: int | None = None
        anchor = blockjobs if blockjobs is not None else _anchor(root)
        self._anchor = (str(anchor.tag), anchor.sourceline or 1) if anchor is not None else None
        self._replaces_blockjobs = blockjobs is not None
        self._root_line = root.sourceline or 1

    def _head_tail(self) -> tuple[bytes, bytes]:
        """The bytes before and after `<blockjobs>` (or where it would go)."""
        if self._split is None:
            data = self._data
            shift = 0  # lines cut from above the domain
            if self._anchor is None:
                # It goes last in the root, whose end tag is found by scanning tags: the
                # bytes `</domstatus` may sit in a comment.
                start, end = element_span(data, b"domstatus", self._root_line, _root)
                if data[end - 2 : end] == b"/>":
                    # `<domstatus/>`: open the root up so `<blockjobs>` has a place.
                    data = data[: end - 2] + b">\n</domstatus>" + data[end:]
                    first = last = end
                else:
                    first = last = data.rindex(b"</", start, end)
            elif self._replaces_blockjobs:
                start, end = self._loaded_blockjobs.span()
                if self._extra:  # all after `end`: the offsets hold
                    data, shift = _cut_extra(data, self._extra)
                first, last = whole_lines(data, start, end)
                if not self._extra:
                    self._section = data[first:last]
            else:
                tag, line = self._anchor
                span = element_span(data, tag.encode(), line, child_of_root(tag))
                first = last = whole_lines(data, *span)[0]
            self._split = (data[:first], data[last:])
            self._cut_lines = data.count(b"\n", first, last) + shift
            self._data = b""  # the two pieces hold every byte now
        return self._split

    @property
    def _tail_line(self) -> int:
        """Once split: what to add to a line of the tail to get its line as loaded. Counted
        on first use: only reading or editing the domain after a dump needs it, and a first
        dump would count the lines of the whole head for nothing."""
        if self._tail_line_counted is None:
            self._tail_line_counted = self._head_tail()[0].count(b"\n") + self._cut_lines
        return self._tail_line_counted

    def reload(self, data: bytes) -> None:
        """Make this document `data` again, as `loads(data)` reads it: changes not saved
        are given up (`data` is what the file still holds)."""
        self._load(data)

    # Jobs -------------------------------------------------------------------

    @property
    def jobs(self) -> list[BlockJob]:
        """Every job, sorted by name as bytes (libvirt >= 6.10 order)."""
        return sorted(self._jobs.values(), key=_sort_key)

    def job(self, name: str) -> BlockJob | None:
        return self._jobs.get(name)

    def job_for_disk(self, target: str) -> BlockJob | None:
        return next((job for job in self._jobs.values() if job.disk == target), None)

    def add_job(self, job: BlockJob) -> None:
        _check_name(job.name)
        if job.name in self._jobs:
            raise ValueError(f"a block job named '{job.name}' already exists")
        self._check_disk(job)
        self._jobs[job.name] = job

    def replace_job(self, job: BlockJob) -> None:
        if job.name not in self._jobs:
            raise ValueError(f"no block job named '{job.name}'")
        self._check_disk(job)
        self._jobs[job.name] = job

    def remove_job(self, name: str) -> BlockJob:
        try:
            return self._jobs.pop(name)
        except KeyError:
            raise ValueError(f"no block job named '{name}'") from None

    def _check_disk(self, job: BlockJob) -> None:
        if job.disk is None:
            return
        if job.disk not in self._targets:
            raise ValueError(f"job '{job.name}': the domain has no disk '{job.disk}'")
        other = self.job_for_disk(job.disk)
        if other is not None and other.name != job.name:
            raise ValueError(f"disk '{job.disk}' already has block job '{other.name}' assigned")

    @property
    def active(self) -> bool:
        """libvirt's `<blockjobs active>`: a disk has a live job or a legacy copy mirror."""
        for job in self._jobs.values():  # a loop: a dump asks, and a generator costs more
            if job.disk is not None and job.state in ACTIVE_STATES:
                return True
        return self._copy_mirror

    # Domain -------------------------------------------------------------------

    @property
    def _disks(self) -> dict[str, Disk]:
        """Every disk, from the whole document; lines count in the bytes as loaded."""
        if self._full_disks is None:
            # Job edits leave the domain alone: the loaded bytes hold it as a dump would,
            # cost no rendering, and count its lines as loaded (a dump's LF `<blockjobs>`
            # in a CR file, or before a domain it follows, would shift them).
            source = self._loaded_blockjobs.data
            self._full_disks = read_disks(parse(source, self.filename).find("domain"), source)
        return self._full_disks

    @property
    def disks(self) -> tuple[Disk, ...]:
        return tuple(self._disks.values())

    def disk(self, target: str) -> Disk | None:
        """Disk `target`, read from its own bytes when they tell (a restart plans every
        job of every file, and each job needs only its disk), else from the document."""
        if self._full_disks is not None:
            return self._full_disks.get(target)
        if target not in self._read_disks:
            line = self._disk_lines.get(target)
            found = None
            if line is not None:
                if self._line_tells(line):  # else another disk may be the one on `line`
                    found = read_disk_at(self._loaded_blockjobs.data, target, line)
                if found is None:
                    found = self._disks.get(target)
            self._read_disks[target] = found
        return self._read_disks[target]

    def disk_has_mirror(self, target: str) -> bool:
        """Whether disk `target` has a mirror image (`disk(target).mirror`), as loading
        found it: all a finished copy's plan needs, without reading the disk again."""
        return target in self._mirror_images

    def _line_tells(self, line: int) -> bool:
        """Whether lxml's `line` of a disk is its line in the loaded bytes (`SourceLines`):
        not from LAST_LINE on, nor in a file with CR line ends (all on lxml's line 1)."""
        return self._loaded_blockjobs.lines.exact(line)

    def resolve_node(self, job: BlockJob, node_name: str) -> StorageSource | None:
        """The image `node_name` refers to for `job`, in libvirt's lookup order."""
        disk = self.disk(job.disk) if job.disk is not None else None
        tops = [
            disk.chain if disk is not None else None,
            job.chains.disk if job.chains is not None else None,
            disk.mirror if disk is not None and job.mirror else None,
            job.chains.mirror if job.chains is not None else None,
        ]
        for top in tops:
            if top is None:
                continue
            for image in top.images():
                if image.matches(node_name):
                    return image
        return None

    def uses_format_node_names(self) -> bool:
        """True when the jobs' `node=` values are format node names (libvirt <= 9.x)."""
        for job in self._jobs.values():
            for name in node_references(job.data):
                image = self.resolve_node(job, name) if name is not None else None
                if image is not None:
                    return image.format_node == name
        return False

    def node_name_for(self, image: StorageSource) -> str:
        """How a new job names `image`: storage node names, unless the file uses format ones."""
        preferred = (
            (image.format_node, image.storage_node)
            if self.uses_format_node_names()
            else (image.storage_node, image.format_node)
        )
        name = next((n for n in preferred if n is not None), None)
        if name is None:
            raise ValueError(f"image {image.path!r} has no node names")
        return name

    def set_disk_chain(
        self, target: str, chain: StorageSource | None = None, *, drop_mirror: bool = False,
        mirror: Node | None = None, mirror_ready: bool = False,
    ) -> None:
        """Rewrite disk `target` in the embedded `<domain>`.

        `chain` replaces its image chain (as after a commit, pull or pivot);
        `drop_mirror` removes its `<mirror>` (a copy or active commit that ended);
        `mirror` puts that `<mirror>` element in place of the disk's own, or after
        its chain when it has none (libvirt's order: source, backingStore, mirror);
        `mirror_ready` marks the disk's `<mirror>` `ready='yes'` (its job reached ready).
        Every other byte of the file stays as it is.
        """
        disk = self.disk(target)
        if disk is None:
            raise ValueError(f"the domain has no disk '{target}'")
        # The bytes a save would write; the disk sits in the tail, which they end with.
        dumped = self.dumps()
        tail = self._head_tail()[1]
        line = self._disk_lines[target]  # as loaded; from LAST_LINE on, it no longer tells
        if self._tail_line < line < LAST_LINE:  # in the tail (a domain may precede the jobs)
            line += dumped.count(b"\n", 0, len(dumped) - len(tail)) - self._tail_line
        start, end, element = _disk_at(dumped, target, line)
        parent = element.getparent()
        old = kept_node(element, dict(parent.nsmap) if parent is not None else None)
        children: list[Node] = []
        for child in old.children:
            if chain is not None and child.tag == "source":
                children.append(top_source_node(chain))
                backing = backing_node(chain)
                if backing is not None:
                    children.append(backing)
            elif chain is not None and child.tag == "backingStore":
                continue
            elif chain is not None and child.tag == "driver" and chain.format:
                children.append(_set_attr(child, "type", chain.format))
            elif (drop_mirror or mirror is not None) and child.tag == "mirror":
                continue
            elif mirror_ready and child.tag == "mirror":
                children.append(_set_attr(child, "ready", "yes"))
            else:
                children.append(child)
        if mirror is not None:
            after = max(
                (i for i, c in enumerate(children) if c.tag in ("source", "backingStore")),
                default=len(children) - 1,
            )
            children.insert(after + 1, mirror)
        attrs = _set_attr(old, "type", chain.type).attrs if chain is not None else old.attrs
        new = Node("disk", attrs, tuple(children))
        before = dumped[line_start(dumped, start) : start]  # on the disk's line
        indent = before[: len(before) - len(before.lstrip())].decode()
        out: list[str] = []
        write_node(out, new, indent, pad="")
        text = "".join(out).encode("utf-8")
        if text.endswith(b"\n") and line_end(dumped, end):
            text = text[:-1]
        # Re-read everything, so jobs are judged against the new chain as a reload would.
        self._load(dumped[:start] + text + dumped[end:])

    def end_backup(self) -> None:
        """Remove what libvirt keeps of a running backup, as it does once the backup's
        last job ended: `<backups>` and the async job `<job ... async='backup'>`. Without
        this a restarted libvirt 9.0 waits for the backup forever, and holds the domain's
        job lock meanwhile. Every other byte of the file stays as it is."""
        dumped = self.dumps()
        root = etree.fromstring(dumped, TRUSTED_PARSER)
        # Each one by its place among the root's children: another `<job>` (or a `<backups>`
        # in a namespace) may share its line, and every span is taken before any cut.
        ended = [
            element_span(dumped, str(element.tag).encode(), element.sourceline or 1,
                         functools.partial(_child_at, i))
            for i, element in enumerate(root)
            if element.tag == "backups" or (element.tag == "job"
                                            and element.get("async") == "backup")
        ]
        for span in reversed(ended):  # from the end, so earlier offsets hold
            first, last = own_line(dumped, *span)
            dumped = dumped[:first] + dumped[last:]
        if ended:
            self._load(dumped)

    def set_backup_disk_state(self, name: str, state: str) -> None:
        """Record in `<backups>` that the backup's job on disk `name` ended, as libvirt does
        when it hears of it (`state`: complete, failed or cancelled): a restarted libvirt
        ends the backup once no disk of it says `running`, so a disk left so keeps the
        backup, and the domain's job lock, forever. Every other byte stays as it is."""
        dumped = self.dumps()

        def locate(root: etree._Element) -> etree._Element:
            return next(disk for disk in root.iterfind(_BACKUP_DISKS)
                        if disk.get("name") == name)

        try:
            disk = locate(etree.fromstring(dumped, TRUSTED_PARSER))
        except StopIteration:
            return  # not a disk of the backup (or no backup): nothing records it
        if disk.get("state") == state:
            return
        start, _ = element_span(dumped, b"disk", disk.sourceline or 1, locate)
        end = start_tag_end(dumped, start)
        tag = _with_state(dumped[start:end], state.encode())
        self._load(dumped[:start] + tag + dumped[end:])

    # Output -------------------------------------------------------------------

    def dumps(self) -> bytes:
        return self._dump().data

    def _dump(self) -> _Dump:
        """The document as it is now, writing again only the jobs not written as these
        very objects (docs/performance.md, "Save").

        Only identity proves a text current: equal jobs may differ in what is written
        (`raw` is left out of equality), and a reload makes new objects. The last dump is
        kept with what it was made of; nothing else goes into the bytes. The usual edit
        replaces one job, which keeps every job in its place: then the unchanged ones are
        skipped by C loops (`map`, `compress`) and the order by name is the last one.
        """
        split = self._split or self._head_tail()
        jobs = tuple(self._jobs.values())
        last = self._dumped
        if self._section is not None:  # the first dump since loading
            return self._first_dump(split, jobs)
        if last is not None and last.split is split and len(last.jobs) == len(jobs):
            changed = compress(range(len(jobs)), map(is_not, jobs, last.jobs))
            first = next(changed, None)
            # `active` follows from the jobs and `_copy_mirror`, the same unless they changed.
            if first is None and self._copy_mirror is last.copy_mirror:
                return last
            written, texts = _texts(last)
            rank = last.rank
            for i in chain((first,) if first is not None else (), changed):
                if jobs[i].name != written[i].job.name:
                    break  # jobs were removed and added: their places moved
                written[i] = job_text(jobs[i], written[i])
                texts[rank[i]] = written[i].text
            else:
                return self._dumped_as(split, jobs, written, rank, texts)
        return self._written(split, jobs, _texts(last)[0] if last is not None else [])

    def _written(self, split: tuple[bytes, bytes], jobs: tuple[BlockJob, ...],
                 last: list[JobText]) -> _Dump:
        """Every job written again, but for those of texts `last` written from these very
        objects."""
        before = {text.job.name: text for text in last}
        written = [_reuse(before.get(job.name), job) for job in jobs]
        order = sorted(range(len(jobs)), key=lambda i: _sort_key(jobs[i]))
        texts = [written[i].text for i in order]
        rank = tuple(sorted(range(len(jobs)), key=order.__getitem__))
        return self._dumped_as(split, jobs, written, rank, texts)

    def _first_dump(self, split: tuple[bytes, bytes], jobs: tuple[BlockJob, ...]) -> _Dump:
        """The first dump: `<blockjobs>` as read when its key was seen written so, else
        from the model, its key kept when that writes it as read (`asread`)."""
        section, self._section = self._section, None
        assert section is not None
        loaded = self._loaded_jobs
        active = self.active
        key = asread.section_key(section, jobs, active) \
            if len(jobs) == len(loaded) and all(map(is_, jobs, loaded)) else None
        head, tail = split
        head = _with_line_end(head)
        if key is not None and key in asread.AS_READ:
            # Its jobs' texts are cut from it when a later dump needs them (`_texts`).
            self._dumped = _new_dump(_Dump, (split, jobs, self._copy_mirror, active, None,
                                             tuple(range(len(jobs))), None,
                                             b"".join((head, section, tail))))
            return self._dumped
        dump = self._written(split, jobs, [])
        if key is not None and dump.data[len(head) : len(dump.data) - len(tail)] == section:
            asread.learn(key)
        return dump

    def _dumped_as(self, split: tuple[bytes, bytes], jobs: tuple[BlockJob, ...],
                   written: list[JobText], rank: tuple[int, ...], texts: list[bytes]) -> _Dump:
        active = self.active
        head, tail = split
        data = write_blockjobs(texts, active, _with_line_end(head), tail)
        # The lists are the dump's own: a later dump copies them before any change.
        self._dumped = _new_dump(_Dump, (split, jobs, self._copy_mirror, active, written,
                                         rank, texts, data))
        return self._dumped


class _Dump(NamedTuple):
    """A dump and what it was made of."""

    split: tuple[bytes, bytes]  # the bytes around `<blockjobs>`, as `_head_tail` gave them
    jobs: tuple[BlockJob, ...]  # in the document's dict order
    copy_mirror: bool
    active: bool
    # Both None for a dump written as read (`_first_dump`): see `_texts`.
    written: list[JobText] | None  # in dict order
    rank: tuple[int, ...]  # where each job (in dict order) is written among the others
    texts: list[bytes] | None  # the jobs' texts, as written: sorted by name
    data: bytes


_new_dump = tuple.__new__  # NamedTuple's own constructor costs more, per save


def _texts(last: _Dump) -> tuple[list[JobText], list[bytes]]:
    """Copies of `last`'s jobs' texts (in dict order) and its texts as written (sorted by
    name). A dump written as read has them in its bytes, in dict order."""
    if last.written is not None and last.texts is not None:
        return list(last.written), list(last.texts)
    head, tail = last.split
    data = last.data
    written = job_texts_as_read(data[len(_with_line_end(head)) : len(data) - len(tail)],
                                last.jobs)
    return written, [text.text for text in written]


def _with_line_end(head: bytes) -> bytes:
    """The bytes before `<blockjobs>`, ending a line."""
    return head + b"\n" if head and not head.endswith((b"\n", b"\r")) else head


_BACKUP_DISKS = "backups/domainbackup/disks/disk"
# One attribute of a start tag (well-formed: they follow each other, values taken whole).
_ATTRIBUTE = re.compile(rb"\s+([^\s=/>]+)\s*=\s*('[^']*'|\"[^\"]*\")")


def _with_state(tag: bytes, state: bytes) -> bytes:
    """`<disk ...>` start tag `tag` with attribute `state` set to `state` (a plain name);
    a new one goes where libvirt writes it, after `name` and `backup`."""
    at = len(b"<disk")
    for attribute in _ATTRIBUTE.finditer(tag, at):
        if attribute.group(1) == b"state":
            return tag[:attribute.start(2)] + b"'" + state + b"'" + tag[attribute.end(2):]
        if attribute.group(1) in (b"name", b"backup"):
            at = attribute.end()
    return tag[:at] + b" state='" + state + b"'" + tag[at:]


class _Extra(NamedTuple):
    """A `<blockjobs>` after the first (libvirt writes one, but reads the jobs of each)."""

    at: int  # its place among the root's children
    line: int  # where its start tag ends
    above_domain: bool  # cutting its lines moves the domain's up


def _extra_blockjobs(root: etree._Element, first: etree._Element,
                     domain: etree._Element | None) -> tuple[_Extra, ...]:
    domain_at = root.index(domain) if domain is not None else len(root)
    return tuple(_Extra(i, child.sourceline or 1, i < domain_at) for i, child in enumerate(root)
                 if child.tag == "blockjobs" and child is not first)


def _cut_extra(data: bytes, extras: tuple[_Extra, ...]) -> tuple[bytes, int]:
    """`data` without the extra `<blockjobs>`, and how many lines went from above the
    domain: its disks are found, and named in errors, by their lines as loaded."""
    spans = [(own_line(data, *element_span(data, b"blockjobs", extra.line,
                                           functools.partial(_child_at, extra.at))),
              extra.above_domain) for extra in extras]
    shift = 0
    for (start, end), above_domain in reversed(spans):  # from the end, so offsets hold
        shift += data.count(b"\n", start, end) if above_domain else 0
        data = data[:start] + data[end:]
    return data, shift


def _check_name(name: str) -> None:
    """A new job's name must read back as given: the next load would drop a job without
    one, or read another name, which may be taken (the whole file refused)."""
    if not name or not written_as_is(name):
        raise ValueError(f"block job name {name!r} is empty or holds characters a status "
                         "file cannot keep (NUL, control characters other than TAB, LF and "
                         "CR, U+FFFE, U+FFFF, lone surrogates)")


def _child_at(index: int, root: etree._Element) -> etree._Element:
    return root[index]


def _reuse(last: JobText | None, job: BlockJob) -> JobText:
    return last if last is not None and last.job is job else job_text(job, last)


def _disk_at(data: bytes, target: str, line: int) -> tuple[int, int, etree._Element]:
    """Where disk `target`'s element is in `data` (a whole document), its start tag ending
    on `line`, and the element: parsed from its own bytes, or, when those need a namespace
    declared above them, from the document."""
    def locate(root: etree._Element) -> etree._Element:
        return DiskRefs(root.find("domain")).elements[target]  # the one the document reads

    start, end = element_span(data, b"disk", line, locate)
    try:
        return start, end, etree.fromstring(data[start:end], TRUSTED_PARSER)
    except etree.XMLSyntaxError:
        return start, end, locate(etree.fromstring(data, TRUSTED_PARSER))


def _set_attr(node: Node, name: str, value: str) -> Node:
    if node.attr(name) is None:
        return node.with_attrs((*node.attrs, (name, value)))
    return node.with_attrs(tuple((k, value if k == name else v) for k, v in node.attrs))


def loads(data: bytes, filename: str = "<bytes>") -> StatusDocument:
    """Load a status document from bytes; StatusXMLError when libvirt would refuse it."""
    if type(data) is not bytes:
        data = _as_bytes(data)
    return StatusDocument(data, filename)


def _as_bytes(data: object) -> bytes:
    """A bytes-like `data` as bytes; TypeError naming what was given instead (a str got
    "must be str, not bytes" from deep inside the parser, None an AttributeError)."""
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    hint = ": encode it, or give load() the path" if isinstance(data, str) else ""
    raise TypeError(f"loads() takes the document's bytes, not {type(data).__name__}{hint}")


def load(path: str | Path, *, max_bytes: int = MAX_INPUT_BYTES) -> StatusDocument:
    """Load a status file under the input policy (`blockjob.inputs`): InputError when it
    cannot be read (missing, unreadable, not a regular file, over `max_bytes`),
    StatusXMLError when libvirt would refuse it."""
    return StatusDocument(read_file(path, max_bytes=max_bytes), str(path))
