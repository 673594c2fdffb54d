"""Progress output that suits its destination (bottom layer).

On a terminal, tqdm redraws its bar in place with carriage returns. Into a log file or a pipe, those frames
pile up on one huge line. `plain_progress()` wraps stderr when it is not a terminal: every `\\r`-frame is
turned into an ordinary line, at most one per `interval` seconds per bar (the last frame of a bar is always
written), so logs stay readable.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Iterator


class LineStream:
    """A text stream wrapper that turns carriage-return frames into rate-limited plain lines."""

    def __init__(self, stream, interval: float = 10.0):
        self.stream, self.interval = stream, interval
        self.pending = ""  # text of the current line / frame
        self.unwritten: str | None = None  # the last frame skipped by the rate limit
        self.last_emit = float("-inf")  # the first frame is always written

    def _emit(self, line: str) -> None:
        line = line.rstrip()
        if line:
            self.stream.write(line + "\n")
            self.last_emit = time.monotonic()

    def write(self, text: str) -> int:
        for token in re.split(r"([\r\n])", text):
            if token == "\r":  # the current frame will be redrawn: keep it, write it when enough time passed
                if self.pending.strip():
                    if time.monotonic() - self.last_emit >= self.interval:
                        self._emit(self.pending)
                        self.unwritten = None
                    else:
                        self.unwritten = self.pending
                elif self.unwritten:  # a bar cleared itself (leave=False): write its last state
                    self._emit(self.unwritten)
                    self.unwritten = None
                self.pending = ""
            elif token == "\n":
                if self.pending.strip():
                    self._emit(self.pending)
                elif self.unwritten:
                    self._emit(self.unwritten)
                else:
                    self.stream.write("\n")
                self.pending, self.unwritten = "", None
            else:
                self.pending += token
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def close_pending(self) -> None:
        last = self.pending if self.pending.strip() else self.unwritten
        if last:
            self._emit(last)
        self.pending, self.unwritten = "", None

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name):
        return getattr(self.stream, name)


@contextlib.contextmanager
def plain_progress(interval: float = 10.0) -> Iterator[None]:
    """Within the block, stderr writes plain lines instead of carriage-return frames when it is not a terminal."""
    original = sys.stderr
    is_tty = getattr(original, "isatty", lambda: False)()
    if is_tty or isinstance(original, LineStream):
        yield
        return
    wrapped = LineStream(original, interval)
    sys.stderr = wrapped
    try:
        yield
    finally:
        wrapped.close_pending()
        sys.stderr = original
