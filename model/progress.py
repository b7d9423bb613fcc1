"""A progress line for long loops: a bar on a terminal, a few plain lines in a log."""

from __future__ import annotations

import sys
import time


class Progress:
    """``update(label)`` after each item; ``done`` items were finished before this run."""

    def __init__(self, total: int, *, done: int = 0, what: str = "points", stream=None):
        self.total = total
        self.done = done
        self.start_done = done
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = 1 if total <= 50 else max(1, total // 50)

    def eta(self) -> str:
        ran = self.done - self.start_done
        if ran <= 0:
            return "?"
        left = (time.monotonic() - self.start) / ran * (self.total - self.done)
        return f"{int(left // 60)}:{int(left % 60):02d}"

    def update(self, label: str = "") -> None:
        self.done += 1
        if self.tty:
            width = 24
            fill = round(width * self.done / max(self.total, 1))
            bar = "#" * fill + "." * (width - fill)
            line = f"\r[{bar}] {self.done}/{self.total} {self.what}, {self.eta()} left  {label}"
            self.stream.write(line[:150].ljust(150))
            if self.done >= self.total:
                self.stream.write("\n")
        elif self.done % self.every == 0 or self.done >= self.total:
            self.stream.write(f"{self.done}/{self.total} {self.what} ({self.eta()} left) {label}\n")
        self.stream.flush()


class Status:
    """A status line for a loop of unknown length (a search): items done, what the caller
    says of them, the time it has taken. On a terminal one line redrawn after each item; in
    a log a line every ``every_s`` seconds, so a long run shows it is alive."""

    def __init__(self, *, what: str = "items", stream=None, every_s: float = 10.0):
        self.done = 0
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.monotonic()
        self.last = self.start
        self.every_s = every_s
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.shown = False

    def elapsed(self) -> str:
        s = int(time.monotonic() - self.start)
        return f"{s // 60}:{s % 60:02d}"

    def update(self, label: str = "") -> None:
        self.done += 1
        line = f"{self.done} {self.what}, {self.elapsed()} elapsed; {label}"
        if self.tty:
            self.stream.write("\r" + line[:150].ljust(150))
            self.shown = True
        elif time.monotonic() - self.last >= self.every_s:
            self.stream.write(line + "\n")
            self.last = time.monotonic()
        self.stream.flush()

    def clear(self) -> None:
        """Take the line off a terminal before other output."""
        if self.tty and self.shown:
            self.stream.write("\r" + " " * 150 + "\r")
            self.stream.flush()
            self.shown = False
