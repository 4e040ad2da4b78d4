"""plasagne.memory.reuse_freed_memory: freed large blocks come back without page faults."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

# Allocate, touch and free 64 MiB once, then measure the minor page faults of doing it again.
_PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == "reuse":
    from plasagne.memory import reuse_freed_memory
    assert reuse_freed_memory()
def touch():
    block = np.empty(16 * 2**20, dtype=np.float32)
    block.fill(1.0)
    del block
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(setting: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, setting], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


def test_freed_blocks_are_reused_without_page_faults():
    # glibc mmaps and unmaps the block every time: at least one fault per huge page
    default = _faults("default")
    assert default >= 5 * 64 // 2
    assert _faults("reuse") * 20 < default  # the heap keeps the block: (almost) no faults


def test_reuse_freed_memory_is_idempotent():
    from plasagne.memory import reuse_freed_memory

    assert reuse_freed_memory() is reuse_freed_memory()
