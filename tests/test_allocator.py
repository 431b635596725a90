"""Freed memory kept for reuse during a run (glibc's mallopt; elsewhere it does nothing)."""

import resource

import pytest
import torch

from deepprior import allocator
from deepprior.engine import FAST, KEEP_ROOM, MemoryPlan
from deepprior.job import Job
from deepprior.runner import run

glibc_only = pytest.mark.skipif(
    not allocator.available(), reason="mallopt is glibc's; this C library has none"
)
BLOCK_MIB = 64  # over the 32 MiB above which glibc always maps a block afresh
ROUNDS = 5


def _fill_blocks() -> None:
    """What a large fit's step does: several large blocks alive at once, written, freed."""
    blocks = [torch.empty(BLOCK_MIB * 2**20 // 4) for _ in range(2)]
    for block in blocks:
        block.fill_(1.0)
    del blocks


def _page_faults_of_blocks() -> int:
    """The page faults of :data:`ROUNDS` rounds of large blocks, after as many uncounted."""
    for _ in range(ROUNDS):
        _fill_blocks()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(ROUNDS):
        _fill_blocks()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc_only
def test_kept_memory_serves_the_next_large_block_without_the_kernel():
    assert not allocator.keeping_freed_memory()
    mapped_afresh = _page_faults_of_blocks()
    try:
        assert allocator.keep_freed_memory(True)
        kept = _page_faults_of_blocks()
    finally:
        assert not allocator.keep_freed_memory(False)
    # By default every block is mapped afresh; kept, few are (an aligned allocation can miss
    # a freed block by a few bytes and grow the heap instead, more while the heap settles).
    assert kept * 4 < mapped_afresh, (kept, mapped_afresh)
    assert _page_faults_of_blocks() * 4 > mapped_afresh  # glibc's defaults are back


def test_memory_is_kept_only_where_three_times_the_estimate_is_free():
    assert KEEP_ROOM == 3
    assert MemoryPlan(FAST, 100, 300).roomy
    assert not MemoryPlan(FAST, 100, 299).roomy
    assert not MemoryPlan(FAST, 100, None).roomy  # free memory unknown: glibc's defaults


@glibc_only
def test_a_run_keeps_freed_memory_while_it_fits_and_hands_it_back(fast, noisy32):
    job = Job("denoise", {"image": noisy32}, preset=fast, steps=5, seed=0, device="cpu")
    outcome = run(job)
    assert outcome.report.memory["reuses_freed_memory"] is True
    assert not allocator.keeping_freed_memory()
