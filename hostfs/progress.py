"""One status line on stderr for long work, shown only to a person at a terminal.

A log or CI transcript gets nothing from here (the work still logs through
``logging``): the line is drawn only when stderr is a TTY and ``CI`` is unset
(GitHub Actions, GitLab and most CI systems set ``CI``; ``HOSTFS_PROGRESS=0``
turns it off by hand).  The line is redrawn in place (``\\r`` and ``ESC [ K``,
ECMA-48 "erase in line") and erased when the work ends, so what the program
prints itself is never mixed with it; a log record written to the same stream
while the line is up erases it first and draws it again after.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

ERASE_LINE = "\r\x1b[K"


def wanted(stream: TextIO) -> bool:
    """A terminal, and no CI or opt-out in the environment."""
    if os.environ.get("CI") or os.environ.get("HOSTFS_PROGRESS") == "0":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False


class Status:
    """The one line: ``show`` replaces its text, ``clear`` erases it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = wanted(self.stream)
        self.text = ""
        self.handlers: list[logging.StreamHandler] = []

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        if not self.text:
            self._wrap_log_handlers()
        width = shutil.get_terminal_size().columns - 1  # the cursor never wraps
        self.text = text[:width]
        self._draw()

    def clear(self) -> None:
        if self.text:
            self._erase()
            self.text = ""
            for handler in self.handlers:
                del handler.emit  # the class's own method again
            self.handlers = []

    def _draw(self) -> None:
        self.stream.write(ERASE_LINE + self.text)
        self.stream.flush()

    def _erase(self) -> None:
        self.stream.write(ERASE_LINE)
        self.stream.flush()

    def _wrap_log_handlers(self) -> None:
        """Root handlers writing to this stream emit on a clean line, then the line returns."""
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self.stream:
                emit = handler.emit

                def around(record: logging.LogRecord, emit=emit) -> None:
                    self._erase()
                    emit(record)
                    self._draw()

                handler.emit = around  # type: ignore[method-assign]
                self.handlers.append(handler)


@contextmanager
def phase(text: str, stream: TextIO | None = None) -> Iterator[Status]:
    """Show ``text`` while the block runs (``status.show`` may refine it), then erase it."""
    status = Status(stream)
    status.show(text)
    try:
        yield status
    finally:
        status.clear()
