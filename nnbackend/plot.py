"""Training curves as an image file (matplotlib, the optional extra ``plot``)."""

from __future__ import annotations

import math
import os

from .checks import check_path, replace_target

__all__ = ["plot_format", "plot_history", "require_matplotlib"]


def require_matplotlib():
    """A small stand-in for pyplot (``subplots``, ``figure``, ``close``) that
    makes bare matplotlib Figures, or a RuntimeError saying how to get
    matplotlib.

    Figures made without pyplot write files with no display and leave the
    process's matplotlib backend alone: a notebook that draws a loss plot
    through nnbackend still shows its own figures after.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise RuntimeError(
            "plotting needs matplotlib: pip install 'nnbackend[plot]' (or: pip install matplotlib)"
        ) from None
    return _Figures(Figure)


class _Figures:
    """pyplot's ``figure``, ``subplots`` and ``close``, over bare Figures."""

    def __init__(self, figure_class):
        self._figure = figure_class

    def figure(self, figsize=None):
        return self._figure(figsize=figsize)

    def subplots(self, nrows=1, ncols=1, figsize=None, **kwargs):
        fig = self._figure(figsize=figsize)
        return fig, fig.subplots(nrows, ncols, **kwargs)

    def close(self, fig):
        fig.clear()  # not pyplot's: nothing holds it but the caller


def plot_format(path):
    """The image format ``path``'s extension names (png, pdf, svg, ...: those
    matplotlib writes), or a ValueError naming them."""
    plt = require_matplotlib()
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    probe = plt.figure()
    try:
        formats = probe.canvas.get_supported_filetypes()
    finally:
        plt.close(probe)
    if ext not in formats:
        raise ValueError(f"--plot {path}: the format follows the extension; use one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    if ext == "pgf":
        # matplotlib writes .pgf through a TeX system, found only when it writes,
        # after the training: look for it now.
        import shutil

        import matplotlib

        tex = matplotlib.rcParams["pgf.texsystem"]
        if shutil.which(tex) is None:
            raise ValueError(f"--plot {path}: a .pgf plot needs {tex} (a TeX system), which "
                             "is not on the PATH; use .pdf or .svg for a vector image")
    return ext


def plot_history(history, path, title=None):
    """Write the loss (and, for classifiers, accuracy) curves of a fit to ``path``.

    Parameters
    ----------
    history : nnbackend.History
    path : str or os.PathLike
        A ``.png``, ``.pdf``, ``.svg`` (any format matplotlib writes, named by
        the extension); written atomically like checkpoints are.

    Raises
    ------
    RuntimeError
        matplotlib is not installed (the message says how to get it).
    ValueError
        The file cannot be written.
    """
    path = check_path("the plot's path", path)  # bytes too, as open() takes them
    fmt = plot_format(path)
    plt = require_matplotlib()
    epochs = range(1, len(history.loss) + 1)
    panels = 2 if history.accuracy else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    _curves(axes[0][0], epochs, history.loss, history.val_loss, "loss")
    # A fit that diverged in its first epoch recorded none (its loss is empty);
    # NaN or infinite losses take no part in the choice of a log scale.
    finite = [v for v in history.loss if math.isfinite(v)]
    if finite and min(finite) > 0:
        axes[0][0].set_yscale("log")
    if not history.loss:
        axes[0][0].text(0.5, 0.5, "no epoch completed", transform=axes[0][0].transAxes,
                        ha="center", va="center")
    if history.accuracy:
        _curves(axes[0][1], epochs, history.accuracy, history.val_accuracy, "accuracy")
        axes[0][1].set_ylim(0, 1.02)
    if history.stopped_early and history.best_epoch and history.best_epoch > 0:
        # Early stopping kept this epoch's weights, not the last ones drawn.
        for row in axes:
            for ax in row:
                ax.axvline(history.best_epoch, color="0.4", linestyle="--", linewidth=1,
                           label=f"kept: epoch {history.best_epoch}")
                ax.legend()
    fig.suptitle(title or f"{history.mode} descent, batch size {history.batch_size}")
    fig.tight_layout()
    save_figure(plt, fig, path, fmt)


def save_figure(plt, fig, path, fmt):
    """Write ``fig`` to ``path`` in ``fmt`` atomically (a temporary file beside
    the target, renamed over it; see :func:`~nnbackend.checks.replace_target`)
    and close it, whatever happens. ValueError: the file cannot be written."""
    path = os.fspath(path)
    try:
        target = replace_target(path, "plot")
        tmp = f"{target}.tmp-{os.getpid()}"
        try:
            fig.savefig(tmp, format=fmt, dpi=100)
            os.replace(tmp, target)
        except OSError as exc:
            raise ValueError(f"cannot write plot {path}: {exc.strerror or exc}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    finally:
        plt.close(fig)


def _curves(ax, epochs, train, validation, name):
    """One panel: the training curve of ``name`` and, if recorded, the validation one."""
    ax.plot(epochs, train, label="train")
    if validation:
        ax.plot(epochs, validation, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(name)
    ax.legend()
    ax.grid(alpha=0.3)
