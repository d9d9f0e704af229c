"""Progress of a running study on stderr: a tqdm bar on a terminal, plain lines elsewhere.

On a terminal the bar names the claim being computed and shows the ETA.  On anything
else (CI, a log file, a pipe) a line ``ntkcheck: <claim>: <done>/<total> tasks, <elapsed>
elapsed`` is written when the run starts, at least every ``interval`` seconds while it
runs (a background timer, so a long task does not silence it; after the last task it
says the claims are being judged), and when it ends.
"""
from __future__ import annotations

import sys
import threading
import time


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Callable ``progress(done, total, claim)`` for :func:`ntkcheck.runner.run_study`;
    ``close()`` ends it.  ``stream`` defaults to ``sys.stderr``; ``tty`` to whether it
    is a terminal; ``unit`` names what is counted (``report`` counts claims judged);
    ``announce=False`` drops the plain lines at the start and the end (only the periodic ones remain)."""

    def __init__(self, stream=None, tty: bool | None = None, interval: float = 30.0, unit: str = "task",
                 announce: bool = True):
        self.stream = sys.stderr if stream is None else stream
        self.unit, self.announce = unit, announce
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self.bar = None
        self.state = (0, 0, None)
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    def __call__(self, done: int, total: int, claim: str | None = None) -> None:
        with self._lock:
            first = self.state[1] == 0 and self.bar is None and self._timer is None
            self.state = (done, total, claim)
        if self.tty:
            self._update_bar(done, total, claim)
        elif first:
            if self.announce:
                self._line()
            self._timer = threading.Thread(target=self._tick, daemon=True)
            self._timer.start()

    def _update_bar(self, done: int, total: int, claim: str | None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit=self.unit, file=self.stream, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} " + self.unit + "s "
                                       "[{elapsed}<{remaining}]")
        if claim is not None:
            self.bar.set_description_str(claim, refresh=False)
        self.bar.update(done - self.bar.n)

    def _line(self, final: bool = False) -> None:
        with self._lock:
            done, total, claim = self.state
        where = f"{claim}: " if claim else ("judging the claims: " if total and done == total and not final else "")
        self.stream.write(f"ntkcheck: {where}{done}/{total} {self.unit}s, {_clock(time.monotonic() - self.t0)} elapsed\n")
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._line()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self._timer is not None:
            self._stop.set()
            self._timer.join()
            if self.announce:
                self._line(final=True)
