"""The measuring tools the benchmark scripts share (benchmarks/_common.py)."""

import mmap
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import RssRise  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")


def test_rss_rise_sees_a_buffer_written_inside_the_block():
    # fresh pages from the kernel (a numpy array could reuse memory that an allocator
    # kept from earlier tests, which RssRise rightly does not count)
    size = 64 * 2**20
    with mmap.mmap(-1, size) as pages, RssRise() as rss:
        np.frombuffer(pages, dtype=np.uint8)[:] = 1
    assert 60 <= rss.rise_mib <= 200


def test_rss_rise_stays_near_zero_for_small_work():
    with RssRise() as rss:
        np.ones(1000).sum()
    assert rss.rise_mib < 8
