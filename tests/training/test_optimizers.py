"""AveragedAdam and default_optimizer: the moving average that training ends on."""

import keras
import numpy as np
import pytest

import schemaretrieval as sr
from schemaretrieval.training.optimizers import AveragedAdam


def _steps(optimizer, gradients):
    """Applies each gradient to one weight; the weight after every step."""
    w = keras.Variable(np.zeros(2, "float32"))
    after = []
    for g in gradients:
        optimizer.apply([np.asarray(g, "float32")], [w])
        after.append(np.asarray(w).copy())
    return w, after


def test_the_average_warms_up_then_keeps_its_momentum_by_hand():
    gradients = [[1.0, -2.0], [0.5, 1.0], [-1.0, 0.3], [2.0, 2.0], [0.1, -0.4], [1.0, 1.0]]
    _, after = _steps(AveragedAdam(learning_rate=0.1, ema_momentum=0.2, warm_up=8), gradients)
    average = after[0]  # step 0: momentum 0
    for t, weights in enumerate(after[1:], start=1):
        momentum = min(0.2, t / (t + 8))  # 1/9, then the cap 0.2 from t = 2 (2/10)
        average = momentum * average + (1 - momentum) * weights
    optimizer = AveragedAdam(learning_rate=0.1, ema_momentum=0.2, warm_up=8)
    w, again = _steps(optimizer, gradients)
    np.testing.assert_array_equal(again[-1], after[-1])  # training runs on the weights themselves
    optimizer.finalize_variable_values([w])
    np.testing.assert_allclose(np.asarray(w), average, rtol=1e-6)


def test_a_short_run_ends_near_its_last_weights_where_keras_average_keeps_the_first():
    # Keras's own average takes momentum 0.9995 from the first step: after 20
    # steps it is still 99% the first step's weights.
    gradients = [[1.0, 1.0]] * 20
    ours = AveragedAdam(learning_rate=0.1)
    w, after = _steps(ours, gradients)
    ours.finalize_variable_values([w])
    keras_own = keras.optimizers.Adam(learning_rate=0.1, use_ema=True, ema_momentum=0.9995)
    v, _ = _steps(keras_own, gradients)
    keras_own.finalize_variable_values([v])
    np.testing.assert_allclose(after[0], [-0.1, -0.1], rtol=1e-5)
    np.testing.assert_allclose(after[-1], [-2.0, -2.0], rtol=1e-5)
    assert np.all(np.asarray(v) > -0.12)  # about the first step's -0.1
    # t / (t + 10) over 20 steps: the last ten or so steps weigh most
    assert np.all((np.asarray(w) < -1.4) & (np.asarray(w) > -2.0)), np.asarray(w)


def test_the_optimizer_round_trips_through_its_config_and_keras_serialisation():
    opt = AveragedAdam(learning_rate=3e-3, ema_momentum=0.999, warm_up=4, beta_1=0.8)
    for copy in (AveragedAdam.from_config(opt.get_config()),
                 keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(opt))):
        assert type(copy) is AveragedAdam
        assert (round(float(copy.learning_rate), 6), copy.ema_momentum, copy.warm_up, copy.use_ema, copy.beta_1) == (
            3e-3, 0.999, 4.0, True, 0.8)
    assert AveragedAdam().warm_up == 10.0
    with pytest.raises(ValueError, match="AveragedAdam: warm_up must be > 0, got 0"):
        AveragedAdam(warm_up=0)


def test_default_optimizer_is_the_average_or_plain_adam_and_names_a_bad_momentum():
    assert type(sr.default_optimizer()) is AveragedAdam
    assert sr.default_optimizer().ema_momentum == 0.9995
    plain = sr.default_optimizer(2e-3, ema_momentum=None)
    assert (type(plain), plain.use_ema, round(float(plain.learning_rate), 6)) == (keras.optimizers.Adam, False, 2e-3)
    for momentum in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"ema_momentum must be in \(0, 1\] or None, got {momentum}"):
            sr.default_optimizer(ema_momentum=momentum)


def test_momentum_one_averages_with_the_warm_up_alone():
    # Momenta t / (t + 10) = 0, 1/11, 2/12 at steps 0-2, as in AveragedAdam's example: a cap of 1 never binds.
    w = keras.Variable(np.zeros(1, "float32"))
    opt = sr.default_optimizer(0.1, ema_momentum=1.0)
    for _ in range(3):
        opt.apply([np.ones(1, "float32")], [w])
    opt.finalize_variable_values([w])
    assert float(w[0]) == pytest.approx(((-0.1 / 11 - 0.2 * 10 / 11) - 0.3 * 5) / 6, abs=1e-5)  # float32, and Adam's epsilon
