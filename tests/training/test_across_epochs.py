"""A user's Keras callbacks in fit on a table, which runs Keras's fit once per epoch: one
training for them, as on a tf.data input (keras.callbacks.EarlyStopping stops it,
ReduceLROnPlateau lowers the rate across epochs, on_train_begin and on_train_end run once)."""

import keras
import numpy as np
import pytest

import schemaretrieval as sr
from schemaretrieval.training import fit, set_seed


@pytest.fixture(scope="module")
def rows(schema):
    return sr.data.synthetic(schema, 1024, seed=5)


def model(schema, learning_rate=0.01):
    set_seed(0, deterministic=False)
    built = sr.TwoTowerModel(schema)
    built.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return built


class Counting(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("begin")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(epoch)

    def on_train_end(self, logs=None):
        self.calls.append(("end", sorted(logs)))


def test_kerass_early_stopping_stops_fit_on_a_table(schema, rows):
    # no epoch improves the loss by 100: the first sets the best, the second stops (patience 0)
    stopping = keras.callbacks.EarlyStopping(monitor="loss", min_delta=100.0, patience=0)
    counting = Counting()
    history = fit(model(schema), rows, epochs=5, batch_size=256, verbose=0, callbacks=[stopping, counting])
    assert len(history["loss"]) == 2 and stopping.stopped_epoch == 1
    assert counting.calls == ["begin", 0, 1, ("end", ["loss"])]


def test_reduce_lr_on_plateau_keeps_its_patience_across_epochs(schema, rows):
    trained = model(schema)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", min_delta=100.0, patience=1, factor=0.5)
    trained.fit(rows, epochs=4, batch_size=256, verbose=0, callbacks=[plateau])
    # the first epoch sets the best; each later one gains less than 100 and, patience 1, halves the rate
    assert float(trained.optimizer.learning_rate) == pytest.approx(0.01 * 0.5 ** 3)  # 0.01 without the fix


def test_a_callback_that_sets_stop_training_ends_fit(schema, rows):
    class StopAfterFirst(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    history = fit(model(schema), rows, epochs=3, batch_size=256, verbose=0, callbacks=[StopAfterFirst()])
    assert len(history["loss"]) == 1


def test_early_stopping_restores_its_best_epoch_after_fit_puts_the_average_in(schema, rows):
    # the first epoch is the best (no later one gains 100); patience 1 stops after the second
    stopping = keras.callbacks.EarlyStopping(monitor="loss", min_delta=100.0, patience=1, restore_best_weights=True)
    stopped = model(schema)
    history = fit(stopped, rows, epochs=5, batch_size=256, verbose=0, shuffle=False, callbacks=[stopping])
    one_epoch = model(schema)
    fit(one_epoch, rows, epochs=1, batch_size=256, verbose=0, shuffle=False)
    assert len(history["loss"]) == 2
    for restored, expected in zip(stopped.get_weights(), one_epoch.get_weights()):
        np.testing.assert_allclose(restored, expected, rtol=1e-5, atol=1e-6)
