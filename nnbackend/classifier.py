"""Class labels on a model, as scikit-learn's classifiers keep them:
``classes_``, text labels encoded for ``fit``, ``predict_proba`` and
``predict_labels``. A mixin of :class:`nnbackend.MLP` (its own module to
keep ``model.py`` short); it relies on the model's ``output_activation``,
``layer_sizes``, ``backend`` and ``predict``.
"""

from __future__ import annotations

import numpy as np

from .data import is_host
from .network import DEFAULT_CHUNK_SIZE
from .tasks import encode_labels, text_labels

__all__ = ["ClassLabels"]


class ClassLabels:
    """``classes_``, ``predict_proba`` and ``predict_labels`` of a classifier head."""

    _classes = None

    def _label_head(self):
        """'softmax', 'binary' (one sigmoid unit), 'multilabel' (several) or None."""
        if self.output_activation == "softmax":
            return "softmax"
        if self.output_activation == "sigmoid":
            return "binary" if self.layer_sizes[-1] == 1 else "multilabel"
        return None

    def _n_classes(self, what):
        """How many classes the output head tells apart; ``what`` names the
        caller in the refusal of a head that tells none."""
        head = self._label_head()
        if head in ("softmax", "binary"):
            return self.layer_sizes[-1] if head == "softmax" else 2
        raise ValueError(
            f"{what} need a classifier head: a softmax output with one unit per class, or "
            f"one sigmoid unit for two classes; this model's output is "
            f"{self.output_activation!r} with {self.layer_sizes[-1]} unit(s)")

    @property
    def classes_(self):
        """The class labels, ndarray of shape (n_classes,), or None: see
        :class:`nnbackend.MLP`. Setting them checks one distinct label per
        class of the output head."""
        return self._classes

    @classes_.setter
    def classes_(self, classes):
        if classes is None:
            self._classes = None
            return
        text = text_labels(classes, "classes_")
        classes = np.asarray(classes) if text is None else text
        if classes.ndim != 1 or classes.dtype.kind not in "biufUS":
            raise ValueError(f"classes_ must be a 1-D list of labels (text or numbers); got "
                             f"{classes!r}")
        n = self._n_classes("class labels")
        if classes.shape[0] != n or np.unique(classes).shape[0] != n:
            raise ValueError(f"classes_ must list {n} distinct labels, one per class of the "
                             f"output head; got {classes.tolist()}")
        self._classes = classes

    def _class_ids(self, y, learn=False):
        """Text labels in ``y`` as class ids through :attr:`classes_`, which
        ``learn`` (the training labels) sets where there are none yet; numeric
        labels through a numeric :attr:`classes_` other than ``0 .. k-1``; any
        other ``y`` as it is (numbers are class ids or targets already)."""
        labels = text_labels(y) if is_host(y) else None
        if labels is None:
            return self._numeric_labels(y)
        n = self._n_classes("text class labels")
        if self._classes is None:
            if not learn:
                raise ValueError("y holds text class labels, but the model has no classes_ yet: "
                                 "fit it on such labels first, or set model.classes_")
            classes = np.unique(labels)
            k = classes.shape[0]
            if k < 2:
                raise ValueError(f"y holds a single class ({classes[0].item()!r}); a "
                                 "classifier needs two or more")
            if k != n:
                raise ValueError(
                    f"y holds {k} classes {classes[:10].tolist()}, but the model's output tells "
                    f"{n} apart: build it with {k} softmax outputs (one sigmoid unit for two "
                    "classes), or set model.classes_ to all the classes first")
            self.classes_ = classes
        return encode_labels(labels, self._classes)

    def _numeric_labels(self, y):
        """``y`` as class ids where :attr:`classes_` names the classes by
        numbers other than their ids (``[1, 2, 3]``, as ``nnbackend train``
        keeps them): ``predict_labels`` answers in those labels, so ``fit``
        and ``evaluate`` take them too. Ids, one-hot rows and targets
        otherwise, as they are."""
        classes = self._classes
        if (classes is None or classes.dtype.kind not in "biuf"
                or np.array_equal(classes, np.arange(classes.shape[0]))):
            return y
        if not is_host(y):
            raise ValueError(
                f"y is an array of backend {self.backend.name!r}, but model.classes_ "
                f"{classes.tolist()} names the classes by label: give the labels on the "
                "host (a NumPy array or a list), or class ids with model.classes_ = None")
        a = np.asarray(y)
        if a.ndim == 2 and a.shape[1] > 1:
            return y  # one-hot rows, a column per class id
        return encode_labels(a, classes)

    def predict_proba(self, X, chunk_size=DEFAULT_CHUNK_SIZE):
        """Class probabilities for ``X``, as scikit-learn's ``predict_proba``.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        chunk_size : 'auto' or int
            See :meth:`predict`.

        Returns
        -------
        array, shape (n_samples, n_classes)
            Column ``i`` is the probability of ``classes_[i]`` (of class id
            ``i`` without ``classes_``): the softmax output; ``[1 - p, p]``
            for one sigmoid unit; the per-label probabilities of several
            sigmoid units. In the model's namespace and on its device.
        """
        head = self._label_head()
        if head is None:
            self._n_classes("predict_proba and predict_labels")  # raises, naming the head
        out = self.predict(X, chunk_size)
        if head == "binary":
            out = self.backend.xp.concat([1 - out, out], axis=1)
        return out

    def predict_labels(self, X, chunk_size=DEFAULT_CHUNK_SIZE):
        """The predicted class of each row of ``X``: what scikit-learn's
        classifiers return from ``predict`` (here :meth:`predict` stays the
        network's output).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        chunk_size : 'auto' or int
            See :meth:`predict`.

        Returns
        -------
        NumPy ndarray, shape (n_samples,)
            ``classes_[i]`` for the most probable class id ``i`` (the softmax
            output's largest column, the first one on a tie; for one sigmoid
            unit, 1 where its output is above 0.5); the ids themselves where
            the model has no ``classes_``. Several sigmoid units (multi-label):
            shape (n_samples, n_outputs), 1 where an output is above 0.5. On
            the host: text labels cannot live on a device.
        """
        proba = self.predict_proba(X, chunk_size)
        xp, to_host = self.backend.xp, self.backend.to_host
        if self._label_head() == "multilabel":
            return to_host(proba > 0.5).astype(np.int64)
        ids = to_host(xp.argmax(proba, axis=1)).astype(np.int64)
        return ids if self._classes is None else self._classes[ids]
