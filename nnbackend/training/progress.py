"""Progress of a run, epoch by epoch: a tqdm bar where someone watches it,
plain lines where the output goes to a file.

Shared by ``fit(progress=True)`` (through the :class:`~.callbacks.Progress`
callback) and ``nnbackend train``. As Keras decides between its bar and one
line per epoch: a terminal or a Jupyter kernel gets a live bar
(``tqdm.auto``: a widget in a notebook where ipywidgets is installed), with
the rate, the time left and the epoch's figures; a log file or a pipe gets
plain lines, which read well there, and so does a machine without tqdm.

It is updated once per epoch, from figures the training loop has already
brought to the host: it adds no device synchronisation.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

__all__ = ["EpochProgress"]


def _live(stream) -> bool:
    """Whether ``stream`` is watched as it is written: a terminal, or the
    output of a Jupyter kernel (whose streams are no terminals)."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    return "ipykernel" in sys.modules


def _tqdm_class():
    """``tqdm.auto.tqdm``, or None where tqdm is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def _fixed_size(stream) -> dict:
    """tqdm's size arguments: 80 columns and 24 rows where ``stream`` is a
    terminal that reports no size (a pseudo-terminal nobody sized, where tqdm
    would hide the bar); else follow the terminal's width."""
    try:
        unsized = os.get_terminal_size(stream.fileno()).columns == 0
    except (AttributeError, ValueError, OSError):  # not a file descriptor, or no size
        unsized = False
    return {"ncols": 80, "nrows": 24} if unsized else {"dynamic_ncols": True}


def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f}s"
    minutes, seconds = divmod(int(round(s)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class EpochProgress:
    """Epochs done out of ``total``, with each epoch's figures.

    Parameters
    ----------
    total : int
        The epochs the run is asked for.
    stream : file, optional
        Where it is written (default: ``sys.stderr`` at the time of the call).
    max_lines : int, optional
        In plain-line mode, write about this many lines (the first and the
        last epoch always); None writes one per epoch.
    desc : str
        The bar's label.

    Attributes
    ----------
    bar : tqdm or None
        The live bar, or None in plain-line mode.
    """

    def __init__(self, total: int, stream=None, max_lines: int | None = None,
                 desc: str = "training"):
        self.total = int(total)
        # sys.stderr is None where Python runs without one (pythonw, a closed
        # descriptor 2): nothing is shown then.
        self.stream = sys.stderr if stream is None else stream
        self.every = 1 if not max_lines else max(1, -(-self.total // max_lines))
        self.start = time.perf_counter()
        self.bar = None
        self.closed = self.stream is None
        self._pending = None  # (epoch, figures) of an update thinned out, not yet written
        tqdm = _tqdm_class() if not self.closed and _live(self.stream) else None
        if tqdm is not None:
            with self._shown():
                self.bar = tqdm(total=self.total, file=self.stream, desc=desc, unit="epoch",
                                leave=True, **_fixed_size(self.stream))

    @contextlib.contextmanager
    def _shown(self):
        """Writes inside that fail (a closed stream, a hung-up terminal, a full
        disk, a reader that has gone) end the display, not the training: the
        run goes on, and is saved, without it."""
        try:
            yield
        except (OSError, ValueError):  # ValueError: I/O operation on a closed file
            if self.bar is not None:
                self.bar.disable = True  # tqdm's close (at exit too) writes no more
            self.closed, self.bar, self._pending = True, None, None

    def update(self, epoch: int, figures: dict) -> None:
        """Epoch ``epoch`` (1-based) is done; ``figures`` maps names to floats."""
        if self.closed:
            return
        with self._shown():
            if self.bar is not None:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in figures.items()},
                                     refresh=False)
                self.bar.update(epoch - self.bar.n)
                return
            if epoch % self.every and epoch not in (1, self.total):
                self._pending = (epoch, figures)  # written by close() if it is the last
                return
            self._write(epoch, figures)

    def _write(self, epoch, figures, final=False):
        self._pending = None
        text = "  ".join(f"{k} {v:.4g}" for k, v in figures.items())
        elapsed = time.perf_counter() - self.start
        timing = f"{_seconds(elapsed)}"
        if epoch < self.total and not final:
            timing += f", ETA {_seconds(elapsed / epoch * (self.total - epoch))}"
        self.stream.write(f"epoch {epoch}/{self.total}  {text}  [{timing}]\n")
        self.stream.flush()

    def close(self) -> None:
        """End the display. A run that stopped early leaves its bar where it
        stopped; in plain lines its last epoch is written, if it was thinned
        out, without a time left."""
        if self.closed:
            return
        with self._shown():
            if self._pending is not None:
                self._write(*self._pending, final=True)
            if self.bar is not None:
                self.bar.close()
        self.closed = True
