"""A user's Keras callbacks across the one ``model.fit`` per epoch of `fit` on a table.

`fit` on a table (and ``model.fit`` on a DataFrame, path or ``merlin.io.Dataset``)
runs Keras's ``fit`` once per epoch, each epoch with its own data order. Keras
begins and ends training at every call, so a callback that keeps state across
epochs would start over each epoch: ``keras.callbacks.EarlyStopping`` and
``ReduceLROnPlateau`` reset their patience and never act, and a callback's
``model.stop_training = True`` lasts one call. `AcrossEpochs` gives the user's
callbacks one training: ``on_train_begin`` before the first epoch,
``on_train_end`` after the last (`end`), every other hook as Keras calls it,
and `stopped` says that one of them asked to stop.
"""

from __future__ import annotations

import keras

__all__ = ["AcrossEpochs"]


class AcrossEpochs(keras.callbacks.Callback):
    """The user's ``callbacks``, begun once and ended by `end`, in Keras's order.

    >>> class Stop(keras.callbacks.Callback):
    ...     def on_epoch_end(self, epoch, logs=None):
    ...         self.model.stop_training = epoch == 1
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> users = AcrossEpochs([Stop()])
    >>> epoch = 0
    >>> while epoch < 5 and not users.stopped:
    ...     _ = model.fit(np.ones((4, 1)), np.ones((4, 1)), epochs=epoch + 1, initial_epoch=epoch,
    ...                   callbacks=[users], verbose=0)
    ...     epoch += 1
    >>> epoch  # Stop asked after the second epoch
    2
    """

    def __init__(self, callbacks):
        super().__init__()
        self.callbacks = list(callbacks)
        self.begun = False
        self.stopped = False

    def set_model(self, model):
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for callback in self.callbacks:
            callback.set_params(params)

    def on_train_begin(self, logs=None):
        if not self.begun:
            self.begun = True
            self._forward("on_train_begin", logs)

    def on_train_end(self, logs=None):
        """Deferred to `end`: the next epoch's ``model.fit`` goes on with the same training."""

    def end(self, logs=None):
        """The user's ``on_train_end``, once, when the last epoch is done (after `fit` has put the
        final weights in place, so that a callback's own weights, EarlyStopping's best, win)."""
        if self.begun:
            self._forward("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._forward("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._forward("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._forward("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._forward("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._forward("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._forward("on_test_end", logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._forward("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._forward("on_test_batch_end", batch, logs)

    def _forward(self, hook, *args):
        before = self.model.stop_training
        for callback in self.callbacks:
            getattr(callback, hook)(*args)
        if self.model.stop_training and not before:
            self.stopped = True
