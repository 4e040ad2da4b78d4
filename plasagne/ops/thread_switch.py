"""A per-thread switch that is on inside any of its blocks, which may nest.

Examples
--------
>>> switch = ThreadSwitch()
>>> with switch.on():
...     with switch.on():
...         pass
...     switch.active()
True
>>> switch.active()
False
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ThreadSwitch"]


class ThreadSwitch:
    """On in this thread while any :meth:`on` block runs in it.

    Examples
    --------
    >>> ThreadSwitch().active()
    False
    """

    def __init__(self) -> None:
        self._state = threading.local()

    @contextmanager
    def on(self) -> Iterator[None]:
        """A block (nestable) in which :meth:`active` is True in this thread.

        Examples
        --------
        >>> switch = ThreadSwitch()
        >>> with switch.on():
        ...     switch.active()
        True
        """
        depth = getattr(self._state, "depth", 0)
        self._state.depth = depth + 1
        try:
            yield
        finally:
            self._state.depth = depth

    def active(self) -> bool:
        """Whether an :meth:`on` block is running in this thread.

        Examples
        --------
        >>> ThreadSwitch().active()
        False
        """
        return getattr(self._state, "depth", 0) > 0
