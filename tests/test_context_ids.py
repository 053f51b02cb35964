"""Request and trace ids: random, never repeated, not even by a forked worker."""

from __future__ import annotations

import multiprocessing
import re

from lowcode_runtime.context import new_id


def test_ids_are_32_hex_digits_and_all_different():
    ids = [new_id() for _ in range(1000)]  # many reads of the random bytes
    assert all(re.fullmatch("[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def _ids_of_a_child(queue) -> None:
    queue.put([new_id() for _ in range(10)])


def test_a_forked_worker_does_not_repeat_its_parents_ids():
    new_id()  # the parent has read ahead: the next ids are in its memory
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_ids_of_a_child, args=(queue,))
    child.start()
    childs = queue.get(timeout=10)
    child.join(timeout=10)

    parents = [new_id() for _ in range(10)]
    assert not set(childs) & set(parents)
