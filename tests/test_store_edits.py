"""The store writing documents edited byte span by byte span (`end_backup`, `set_disk_chain`,
jobs added and removed): a failed save leaves the file as it was, and the document, given
the file back (`reload`, as recovery does), equal to it and editable again; lock-less readers
only ever see whole versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import blockjob
from blockjob import BlockJob, JobState, JobType
from blockjob.store.status_store import StatusStore, StoreError
from tests.support.disk import disk_directory
from tests.support.docs import status
from tests.test_store_faults import FAULTS
from tests.test_store_readers import (
    DONE,
    HELD,
    HELD_TORN,
    PLAIN,
    PLAIN_TORN,
    SAVES,
    SEEN,
    saved_while_read,
)

_BACKUP = ("<job type='none' async='backup' flags='0x0'/><!-- <backups/> -->\n"
           "  <backups>\n    <domainbackup mode='push'/>\n  </backups>")


def _document(note: str = "") -> blockjob.StatusDocument:
    """Domain `unit` with a running backup, a job on vda, and `note` in its description."""
    data = status(
        "<blockjobs active='yes'><blockjob name='j' type='copy' state='ready'>"
        "<disk dst='vda'/></blockjob></blockjobs>"
    ).replace(b"  <domain ", f"  {_BACKUP}\n  <domain ".encode(), 1).replace(
        b"<name>unit</name>", f"<name>unit</name><description>{note}</description>".encode())
    return blockjob.loads(data.replace(b"\n", b"\r\n"), "unit.xml")


def _shorter_chain(doc: blockjob.StatusDocument) -> None:
    vda = doc.disk("vda")
    assert vda is not None and vda.chain is not None
    doc.set_disk_chain("vda", vda.chain.backing)


EDITS: dict[str, Callable[[blockjob.StatusDocument], object]] = {
    "end_backup": blockjob.StatusDocument.end_backup,
    "chain": _shorter_chain,
    "drop_mirror": lambda doc: doc.set_disk_chain("vdb", drop_mirror=True),
    "add": lambda doc: doc.add_job(BlockJob("k", JobType.BROKEN, JobState.FAILED)),
    "remove": lambda doc: doc.remove_job("j"),
}


@pytest.mark.parametrize("fault", ["write, disk full", "write, I/O error", "file fsync"])
@pytest.mark.parametrize("edit", EDITS)
def test_a_failed_save_of_an_edit_leaves_the_file_and_the_document_can_take_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: str, fault: str
) -> None:
    store = StatusStore(tmp_path)
    doc = _document()
    path = store.save(doc)
    saved = path.read_bytes()
    assert saved == doc.dumps()
    EDITS[edit](doc)
    assert doc.dumps() != saved
    owner, function, fake, message = FAULTS[fault]
    monkeypatch.setattr(owner, function, fake)
    with store.owned("unit") as owned, pytest.raises(StoreError, match=message):
        owned.save(doc)
    monkeypatch.undo()
    assert path.read_bytes() == saved
    doc.reload(path.read_bytes())
    assert doc.dumps() == saved
    assert doc.jobs == blockjob.loads(saved).jobs
    EDITS[edit](doc)  # and the edit, made again, saves
    store.save(doc)
    assert path.read_bytes() == doc.dumps() == blockjob.loads(path.read_bytes()).dumps()


def _versions() -> list[blockjob.StatusDocument]:
    """Three versions of one domain, each made by another edit, of different sizes."""
    docs = [_document(note * size) for note, size in (("A", 96 * 1024), ("B", 24 * 1024),
                                                      ("C", 64 * 1024))]
    docs[0].end_backup()
    _shorter_chain(docs[1])
    docs[1].remove_job("j")
    docs[2].set_disk_chain("vdb", drop_mirror=True)
    return docs


@pytest.mark.fuzz
def test_lockless_readers_see_whole_versions_of_edited_documents(tmp_path: Path) -> None:
    with disk_directory(tmp_path) as directory:
        store = StatusStore(directory)
        docs = _versions()
        whole = {doc.dumps() for doc in docs}
        assert len(whole) == len(docs)
        counts = saved_while_read(store, docs, whole)
        print(f"\n{counts[SAVES]} saves of edited documents, {counts[PLAIN] + counts[HELD]} "
              f"reads, torn: {counts[PLAIN_TORN]} plain, {counts[HELD_TORN]} held")
        assert counts[DONE] == 1 and counts[SEEN] == len(docs)
        assert (counts[PLAIN_TORN], counts[HELD_TORN]) == (0, 0)


def test_the_versions_are_whole_documents_each_edit_made() -> None:
    # What the readers' test saves: each version loads and dumps to itself.
    for doc in _versions():
        data = doc.dumps()
        assert blockjob.loads(data).dumps() == data
