"""The measured optimizer: Adam whose training ends on a moving average of
the weights (docs/defaults.md).

`TwoTowerModelV2.compile()` takes `default_optimizer()` when given no
optimizer; the CLI takes it with `--learning-rate` and `--ema-momentum`.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["AveragedAdam", "default_optimizer"]

DEFAULT_LEARNING_RATE = 1e-3
# fit ends on a moving average of the weights (docs/defaults.md). With the
# warm-up the cap binds only after 20,000 steps.
DEFAULT_EMA_MOMENTUM = 0.9995
# The average's momentum at step t is at most t / (t + warm_up): without it
# a run of a few hundred steps would end near its initial weights.
DEFAULT_WARM_UP = 10


@keras.saving.register_keras_serializable(package="schemaretrieval")
class AveragedAdam(keras.optimizers.Adam):
    """Adam with `use_ema`: Keras's `fit` ends with the weights set to their
    exponential moving average. Unlike Keras's own average, whose momentum
    is `ema_momentum` from the first step, this one warms up: at step t it
    is `min(ema_momentum, t / (t + warm_up))`, as TensorFlow 1's
    `ExponentialMovingAverage(num_updates=t)` with warm_up 10, so a short
    run averages over its last steps rather than holding on to its initial
    weights. Until the cap, the average weighs step s of t about as
    `(s / t) ** warm_up`: with 10, it is mostly the last tenth of the run.

    >>> import numpy as np
    >>> w = keras.Variable(np.zeros(1, "float32"))
    >>> opt = AveragedAdam(learning_rate=0.1, ema_momentum=0.99)
    >>> for _ in range(3):
    ...     opt.apply([np.ones(1, "float32")], [w])  # Adam: w steps by -0.1
    >>> round(float(w[0]), 4)
    -0.3
    >>> opt.finalize_variable_values([w])
    >>> round(float(w[0]), 4)  # momenta 0, 1/11, 2/12: ((-0.1 / 11 - 0.2 * 10 / 11) - 0.3 * 5) / 6
    -0.2818
    """

    def __init__(self, learning_rate=DEFAULT_LEARNING_RATE, ema_momentum=DEFAULT_EMA_MOMENTUM,
                 warm_up: float = DEFAULT_WARM_UP, **kwargs):
        if not warm_up > 0:
            raise ValueError(f"AveragedAdam: warm_up must be > 0, got {warm_up}")
        kwargs["use_ema"] = True
        super().__init__(learning_rate=learning_rate, ema_momentum=ema_momentum, **kwargs)
        self.warm_up = float(warm_up)

    def get_config(self):
        return {**super().get_config(), "warm_up": self.warm_up}

    def _update_model_variables_moving_average(self, trainable_variables):
        # Keras's hook, called after each step's update and before
        # `iterations` counts it (so t is 0 at the first step).
        t = ops.cast(self.iterations, "float32")
        momentum = ops.minimum(self.ema_momentum, t / (t + self.warm_up))
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                m = ops.cast(momentum, variable.dtype)
                average.assign(m * average + (1.0 - m) * variable)


def default_optimizer(learning_rate: float = DEFAULT_LEARNING_RATE,
                      ema_momentum: float | None = DEFAULT_EMA_MOMENTUM) -> keras.optimizers.Optimizer:
    """The measured optimizer: `AveragedAdam(learning_rate, ema_momentum)`,
    or plain Adam with `ema_momentum=None`.

    >>> opt = default_optimizer()
    >>> type(opt).__name__, round(float(opt.learning_rate), 6), opt.use_ema, opt.ema_momentum
    ('AveragedAdam', 0.001, True, 0.9995)
    >>> type(default_optimizer(3e-3, ema_momentum=None)).__name__
    'Adam'
    """
    if ema_momentum is None:
        return keras.optimizers.Adam(learning_rate)
    # 1 is a real average here: the warm-up's t / (t + warm_up) for the whole run.
    if not 0.0 < ema_momentum <= 1.0:
        raise ValueError(f"default_optimizer: ema_momentum must be in (0, 1] or None, got {ema_momentum}")
    return AveragedAdam(learning_rate, ema_momentum=ema_momentum)
