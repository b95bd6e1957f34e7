"""Progress of a long step, said one way by every part of the library: ETL,
evaluation, the baselines, export (training's epochs are Keras's own lines).

`Progress` counts the units of a step (queries ranked, batches embedded,
Dask tasks run) and writes to stderr, so that stdout keeps the results:

* **on a terminal**, once a step has run `BAR_AFTER_S`, a bar with the
  share done, the time so far and an estimate of the time left, redrawn in
  place at most every `REDRAW_S` and erased when the step ends;
* **anywhere else** (a file, a pipe, a notebook), once a step has run
  `LINES_AFTER_S`, one plain line at each `every` of it (by default 25%,
  50%, 75%) and one when it ends, without escape codes.

A step shorter than that writes nothing. `set_enabled(False)` silences every
step of the process. `Step` times a whole stage of a command (ETL, training,
evaluation, export) and says its time and its peak memory when it ends.

>>> import io
>>> ticks = iter(range(0, 100, 2)).__next__   # a clock: 2 s per reading
>>> log = io.StringIO()                       # not a terminal
>>> with Progress("ranking", total=8, unit="queries", stream=log, clock=ticks) as progress:
...     for _ in range(8):
...         progress.update()
>>> print(log.getvalue(), end="")   # nothing before 5 s, then each quarter passed
ranking: 38% (3/8 queries), 6s, about 10s left
ranking: 50% (4/8 queries), 8s, about 8s left
ranking: 75% (6/8 queries), 12s, about 4s left
ranking: 8 queries in 18s
"""

from __future__ import annotations

import resource
import sys
import time

__all__ = ["Progress", "Step", "peak_rss_bytes", "set_enabled", "format_duration", "BAR_AFTER_S", "LINES_AFTER_S",
           "REDRAW_S"]

#: On a terminal, a step's bar appears once it has run this long (seconds).
BAR_AFTER_S = 1.0
#: Elsewhere, a step writes lines once it has run this long (seconds).
LINES_AFTER_S = 5.0
#: The bar is redrawn at most this often (seconds).
REDRAW_S = 0.1
_BAR_WIDTH = 20
_enabled = [True]


def set_enabled(enabled: bool) -> None:
    """Turns every `Progress` of the process on or off (on by default).

    >>> set_enabled(False); Progress("quiet", total=1).enabled
    False
    >>> set_enabled(True)
    """
    _enabled[0] = bool(enabled)


def format_duration(seconds: float) -> str:
    """``12s``, ``3m05s``, ``2h04m``.

    >>> format_duration(4.2), format_duration(185), format_duration(7440)
    ('4s', '3m05s', '2h04m')
    """
    seconds = int(round(max(0.0, seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """The progress of one step of ``total`` units (see the module docstring).

    Args:
        what: what the step does, the start of every line ("ranking", "EASE").
        total: its units; ``update(n)`` counts ``n`` more.
        unit: the units' name in the lines ("queries", "batches").
        initial: units already done before this call (a resumed epoch): the
            estimate of the time left counts only the units done here.
        every: elsewhere than a terminal, a line at each multiple of this share.
        eta: False for a step whose units differ in length (stages): no estimate.
        summary: elsewhere than a terminal, a last line with the time taken
            (False where the caller writes its own, as Keras does per epoch).
        stream: where to write (default: ``sys.stderr`` when created).
        clock: seconds as a float (default ``time.monotonic``).

    On a terminal, the bar of a step that outlasts `BAR_AFTER_S` (here a fake
    terminal; ``\\r`` redraws the line, and the bar is erased at the end):

    >>> import io
    >>> class Terminal(io.StringIO):
    ...     def isatty(self):
    ...         return True
    >>> screen, ticks = Terminal(), iter([0, 0.5, 2, 3]).__next__
    >>> progress = Progress("EASE", total=2, unit="blocks", stream=screen, clock=ticks)
    >>> progress.update()   # at 0.5 s: too early for a bar
    >>> progress.update()   # at 2 s
    >>> screen.getvalue().strip()
    'EASE [====================] 100% 2/2 blocks 2s, about 0s left'
    >>> progress.close(); screen.getvalue().endswith("\\r")   # erased
    True
    """

    def __init__(self, what: str, total: int, *, unit: str = "", initial: int = 0, every: float = 0.25,
                 eta: bool = True, summary: bool = True, stream=None, clock=None):
        self.what, self.total, self.unit = str(what), max(0, int(total)), unit
        self.done = self.initial = int(initial)
        self.every, self.eta, self.summary = float(every), bool(eta), bool(summary)
        self.stream = sys.stderr if stream is None else stream
        self.enabled = _enabled[0]
        self.terminal = _is_terminal(self.stream)
        self.clock = clock or time.monotonic
        self.start = self.clock()
        self.note = ""
        self._drawn_width = 0
        self._last_draw = None
        self._lines = 0
        self._last_share = self.initial / self.total if self.total else 0.0
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1, note: str | None = None) -> None:
        """``n`` more units done; ``note`` (what the step does now) follows the counts."""
        self.done = min(self.total, self.done + int(n)) if self.total else self.done + int(n)
        if note is not None:
            self.note = note
        if not self.enabled or self._closed:
            return
        now = self.clock()
        elapsed = now - self.start
        if self.terminal:
            if elapsed >= BAR_AFTER_S and (self._last_draw is None or now - self._last_draw >= REDRAW_S
                                           or self.done >= self.total):
                self._draw(elapsed)
                self._last_draw = now
        elif elapsed >= LINES_AFTER_S and self.total and self.done < self.total:
            share = self.done / self.total
            if int(share / self.every + 1e-9) > int(self._last_share / self.every + 1e-9):
                self._write(f"{self.what}: {self._counts(share)}, {self._times(elapsed)}\n")
                self._last_share = share
                self._lines += 1

    def close(self) -> None:
        """Ends the step: erases the bar, or writes the last line of a step that wrote any or outlasted
        `LINES_AFTER_S`."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        if self.terminal:
            if self._drawn_width:
                self._write("\r" + " " * self._drawn_width + "\r")
            return
        elapsed = self.clock() - self.start
        if self.summary and (self._lines or elapsed >= LINES_AFTER_S):
            size = f"{self.done} {self.unit}".strip() if self.total else ""
            self._write(f"{self.what}: {size + ' in ' if size else ''}{format_duration(elapsed)}\n")

    # -- formatting --------------------------------------------------------

    def _counts(self, share: float) -> str:
        text = f"{share:.0%} ({self.done}/{self.total}{' ' + self.unit if self.unit else ''})"
        return f"{text}, {self.note}" if self.note else text

    def _times(self, elapsed: float) -> str:
        text = format_duration(elapsed)
        run = self.done - self.initial
        if self.eta and run > 0 and self.total:
            text += f", about {format_duration(elapsed / run * (self.total - self.done))} left"
        return text

    def _draw(self, elapsed: float) -> None:
        share = self.done / self.total if self.total else 0.0
        filled = int(round(_BAR_WIDTH * share))
        bar = "=" * filled + (">" if filled < _BAR_WIDTH else "") + " " * max(0, _BAR_WIDTH - filled - 1)
        counts = f"{share:4.0%} {self.done}/{self.total}{' ' + self.unit if self.unit else ''}"
        text = f"{self.what} [{bar}] {counts}{' ' + self.note if self.note else ''} {self._times(elapsed)}"
        pad = max(0, self._drawn_width - len(text))
        self._write("\r" + text + " " * pad)
        self._drawn_width = max(self._drawn_width, len(text))

    def _write(self, text: str) -> None:
        if not _write(self.stream, text):
            self.enabled = False


def _write(stream, text: str) -> bool:
    """Writes and flushes; False for a closed or broken stream: progress is never worth an error."""
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        return False
    return True


def peak_rss_bytes(reset: bool = False) -> int:
    """The process's peak resident memory in bytes: Linux's ``VmHWM``, which ``reset=True``
    brings down to the current size first (so that a stage reads its own peak);
    elsewhere the lifetime peak of ``getrusage``, which cannot be reset.

    >>> peak_rss_bytes() > 0
    True
    """
    if reset:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            pass
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class Step:
    """A stage of a command, timed: at its end one line on stderr with its wall time,
    the rows it went through per second (when given ``rows``) and its peak
    resident memory (`peak_rss_bytes`, reset as the stage starts). The line
    begins ``step``, so that a log is searched for it; a stage that raises
    says nothing.

    >>> import io
    >>> log, ticks = io.StringIO(), iter([0.0, 125.0]).__next__
    >>> with Step("training", rows=1_000_000, stream=log, clock=ticks):
    ...     pass
    >>> line = log.getvalue()
    >>> line.startswith("step training: 2m05s, 8,000 rows/s, peak RSS "), line.endswith(" GB\\n")
    (True, True)
    """

    def __init__(self, what: str, rows: int | None = None, stream=None, clock=None):
        self.what, self.rows = str(what), rows
        self.stream = sys.stderr if stream is None else stream
        self.clock = clock or time.monotonic
        self.seconds = self.peak_bytes = None

    def __enter__(self):
        peak_rss_bytes(reset=True)
        self.start = self.clock()
        return self

    def __exit__(self, kind, *exc):
        if kind is not None:
            return
        self.seconds = self.clock() - self.start
        self.peak_bytes = peak_rss_bytes()
        rate = f", {self.rows / max(self.seconds, 1e-9):,.0f} rows/s" if self.rows else ""
        text = f"step {self.what}: {format_duration(self.seconds)}{rate}, peak RSS {self.peak_bytes / 1e9:.2f} GB\n"
        _write(self.stream, text)
