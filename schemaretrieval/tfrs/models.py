"""`Model`: TFRS's base model (`tfrs.Model`, `tfrs.models.Model`) on Keras 3.

A subclass sets up its towers and task in ``__init__`` and implements
``compute_loss(inputs, training=False)``; `fit` and `evaluate` then train
and test on batches of raw features with no labels. Keras 3 gave
``compute_loss`` another signature (``x, y, y_pred, sample_weight``); this
base keeps TFRS's, and its own ``train_step`` and ``test_step`` call it, so
nothing of Keras's default step runs.

The logs match TFRS's: every metric of the model (the task's top-k, batch
and loss metrics, by their names), and ``loss``, ``regularization_loss``
(the sum of ``self.losses``) and ``total_loss`` of the last batch. `fit`'s
history and ``evaluate(return_dict=True)`` hold the last batch's losses, as
in TFRS; Keras 3's progress bar shows them as they are (tf-keras's averaged
them over the epoch for display).

``compile`` leaves XLA off unless ``jit_compile=True`` is passed, as
tf-keras did: Keras 3's default ("auto") turns it on where a GPU is found,
and XLA cannot compile the lookup tables and `tf.data` reads that TFRS
models hold (``StringLookup`` towers, `FactorizedTopK` over a dataset).
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["Model"]


def _summed_repeats(gradient):
    """A sparse gradient with each row once, its repeats summed.

    An embedding row looked up twice in a batch gets two slices of gradient.
    tf-keras summed them before its optimizer ran; Keras 3's optimizers take
    them apart, so that Adagrad's accumulator grows by the sum of their
    squares rather than by the square of their sum, and training drifts
    from TFRS's figures (tests/test_tfrs_model.py, case "adagrad").
    """
    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    rows, positions = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, gradient.dense_shape)


class Model(keras.Model):
    """A Keras model trained through ``compute_loss(inputs, training)``.

    >>> import numpy as np
    >>> class Center(Model):  # learns the mean of its inputs
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.center = keras.Variable(np.zeros(2, "float32"))
    ...     def compute_loss(self, inputs, training=False):
    ...         return tf.reduce_mean(tf.reduce_sum(tf.square(inputs - self.center), axis=1))
    >>> model = Center()
    >>> model.compile(optimizer=keras.optimizers.SGD(0.5))
    >>> history = model.fit(tf.data.Dataset.from_tensor_slices(np.array([[1.0, 3.0], [3.0, 5.0]], "float32")).batch(2),
    ...                     epochs=3, verbose=0)
    >>> np.round(model.center.numpy(), 2).tolist(), sorted(history.history)
    ([2.0, 4.0], ['loss', 'regularization_loss', 'total_loss'])
    """

    def compute_loss(self, inputs, training: bool = False):
        """The loss of a batch of raw ``inputs``; it also updates the model's metrics."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_loss(inputs, training=False)")

    def call(self, inputs, training=False):
        """The loss of ``inputs``. A TFRS model needs no ``call``, but Keras 3
        calls it once, on symbolic inputs, to build a model that trains under a
        distribution strategy; a subclass may define its own."""
        return self.compute_loss(inputs, training=training)

    def compile(self, optimizer="rmsprop", *args, jit_compile=False, **kwargs):
        super().compile(optimizer, *args, jit_compile=jit_compile, **kwargs)

    def fit(self, x=None, y=None, *args, **kwargs):
        # Keras 3 warns that its default shuffle=True is ignored for a
        # tf.data.Dataset, the input of every TFRS program (which shuffles the
        # dataset itself); tf-keras said nothing. Positional shuffle is args[6].
        if isinstance(x, tf.data.Dataset) and "shuffle" not in kwargs and len(args) < 7:
            kwargs["shuffle"] = False
        return super().fit(x, y, *args, **kwargs)

    def train_step(self, inputs):
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            self._built_by_a_step()
            regularization_loss = self._regularization_loss(loss)
            total_loss = loss + regularization_loss
            # A LossScaleOptimizer (mixed precision) scales the loss here and
            # unscales the gradients when it applies them; others return it as is.
            scaled_loss = self.optimizer.scale_loss(total_loss)
        variables = self.trainable_variables
        # A FactorizedTopK over a dataset reads the candidate tower inside a
        # tf.data pipeline, which the graph does not order against the
        # optimizer's update: the metrics could see the updated tower. Reading
        # the metrics first makes them see the weights the loss saw, as when
        # run eagerly (docs/migrating.md).
        with tf.control_dependencies([tf.convert_to_tensor(v) for metric in self.metrics for v in metric.variables]):
            gradients = tape.gradient(scaled_loss, variables)
        self.optimizer.apply_gradients(zip([_summed_repeats(g) for g in gradients], variables))
        return self._logs(loss, regularization_loss, total_loss)

    def test_step(self, inputs):
        loss = self.compute_loss(inputs, training=False)
        self._built_by_a_step()
        regularization_loss = self._regularization_loss(loss)
        return self._logs(loss, regularization_loss, loss + regularization_loss)

    def _built_by_a_step(self):
        # A TFRS model is never called: compute_loss builds its layers, and Keras 3 marks only a
        # called model built, so save_weights and ModelCheckpoint(save_weights_only=True) refused it
        # as "not yet built" after training. Set as the step is traced, before any epoch ends.
        self.built = True

    def _regularization_loss(self, loss):
        losses = [tf.cast(tf.reduce_sum(extra), loss.dtype) for extra in self.losses]
        return tf.add_n(losses) if losses else tf.zeros((), loss.dtype)

    def _logs(self, loss, regularization_loss, total_loss):
        logs = {}
        for metric in self.metrics:
            result = metric.result()
            # Keras 3 gathers the metrics passed to compile() in one metric whose result is a dict.
            logs.update(result if isinstance(result, dict) else {metric.name: result})
        logs.update(loss=loss, regularization_loss=regularization_loss, total_loss=total_loss)
        return logs
