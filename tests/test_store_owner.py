"""`StatusStore.owned`: one owner per domain, bounded waits, saves only of that domain."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from blockjob.statusxml.document import loads
from blockjob.store import DomainBusyError, DomainNameError, StatusStore
from tests.support.docs import status


def _doc(name: str) -> bytes:
    body = status("<blockjobs active='no'/>")
    return body.replace(b"<name>unit</name>", f"<name>{name}</name>".encode())


def test_owner_saves_and_reloads(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    with store.owned("dom") as owner:
        assert not owner.exists()
        owner.save(loads(_doc("dom"), "x"))
        assert owner.load().domain_name == "dom"


def test_second_owner_waits_then_is_busy(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    errors: list[BaseException] = []

    def second_owner() -> None:
        try:
            with StatusStore(tmp_path).owned("dom", timeout=0.05):
                pass
        except DomainBusyError as exc:
            errors.append(exc)

    with store.owned("dom"):
        thread = threading.Thread(target=second_owner)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "owned by another process or thread" in str(errors[0])
    with store.owned("dom", timeout=0.05):  # released when the block ended
        pass


def test_other_domains_are_not_blocked(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    with store.owned("a"), store.owned("b", timeout=0.05) as owner:
        assert owner.name == "b"


def test_owner_refuses_another_domains_document(tmp_path: Path) -> None:
    with StatusStore(tmp_path).owned("a") as owner, pytest.raises(DomainNameError):
        owner.save(loads(_doc("b"), "x"))


def test_threads_take_turns(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    inside = 0
    overlaps: list[int] = []

    def work() -> None:
        nonlocal inside
        for _ in range(20):
            with store.owned("dom"):
                inside += 1
                overlaps.append(inside)
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [1] * 80


def test_on_save_sees_each_saved_document_and_holds_knows_them(tmp_path: Path) -> None:
    store = StatusStore(tmp_path)
    first, second = loads(_doc("dom"), "x"), loads(_doc("dom"), "y")
    seen: list[object] = []
    with store.owned("dom") as owner:
        owner.on_save = seen.append
        owner.save(first)
        loaded = owner.load()
        assert owner.holds(first) and owner.holds(loaded) and not owner.holds(second)
        owner.save(second)
    assert seen == [first, second]
