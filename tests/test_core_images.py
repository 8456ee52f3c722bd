"""pipeline/core/images.py on its own: opening decodes no pixel (but an ICO's frame, sized
first), and the memory budget lets an image larger than itself through, alone, and serves
waiters in order."""

from __future__ import annotations

import threading
import time

from helpers.images import flat_png, ico_around, sample_files

from pipeline.core.images import ImageError, MemoryBudget, open_image


def test_opening_reads_headers_only():
    opened = 0
    for data in sample_files():
        try:
            image = open_image(data).image
        except ImageError as exc:
            assert exc.reason == "undecodable", exc  # the refused formats
            continue
        opened += 1
        # PIL decodes an ICO's frame while opening (after its size was checked)
        assert (image.im is not None) if image.format == "ICO" else (image._im is None), image.format
    assert opened >= 15
    small_frame = ico_around(flat_png(64, 64, colour_type=6), declared=16)
    assert open_image(small_frame).image.size == (64, 64)


def test_memory_budget_serves_in_order_and_lets_a_huge_image_run_alone():
    budget = MemoryBudget(100)
    order: list[str] = []
    first_in = threading.Event()
    release_first = threading.Event()

    def hold(name: str, nbytes: int, started: threading.Event | None = None,
             release: threading.Event | None = None) -> None:
        with budget.hold(nbytes):
            order.append(name)
            if started:
                started.set()
            if release:
                release.wait(10)

    first = threading.Thread(target=hold, args=("first", 60, first_in, release_first))
    first.start()
    first_in.wait(10)
    huge = threading.Thread(target=hold, args=("huge", 10**12))  # > capacity: waits for all
    huge.start()
    time.sleep(0.2)
    small = threading.Thread(target=hold, args=("small", 10))  # would fit, but queued after
    small.start()
    time.sleep(0.2)
    assert order == ["first"] and budget.in_use == 60
    release_first.set()
    for thread in (first, huge, small):
        thread.join(10)
    assert order == ["first", "huge", "small"] and budget.in_use == 0
