"""The measured optimizer: Adam whose training ends on a moving average of
the weights (docs/defaults.md), with sparse updates of the embedding
tables (docs/training.md).

`TwoTowerModelV2.compile()` takes `default_optimizer()` when given no
optimizer; the CLI takes it with `--learning-rate` and `--ema-momentum`.

Sparse updates. A step reads a few thousand rows of tables that can hold
millions; Keras's Adam moves every row of every table at every step
(the gradient of a lookup, a `tf.IndexedSlices`, turns dense in
`gradient - m`), and its moving average touches every weight at every
step, so a step costs in proportion to the tables rather than the batch.
`LazyAdam` updates, for a variable whose gradient is a `tf.IndexedSlices`,
only the rows in it. A row no step reads keeps its moments and weight
until a step reads it again; then, before that step's update, it is
brought to where dense Adam would have taken it over the steps that
skipped it (a zero gradient each: the moments decay, the weight moves on
them), in closed form (`catch_up`). Without the catch-up it is the lazy
Adam of TensorFlow Addons, which TensorFlow Recommenders' users trained
with, and which lost 0.002-0.004 of recall@10 and @100 against dense Adam
(docs/training.md).

The moving average is kept lazily per row, with the same result as the
dense average: a row no step changes holds one value `x`, over which the
dense average moves as `a <- m_t a + (1 - m_t) x` at each step t, so
after the steps s+1..t it is `P a + (1 - P) x` with `P` the product of
their momenta. Each row keeps the sum of the logs of the momenta up to
its last update (`average_since`); the optimizer keeps the running sum,
so that `P` is `exp(sum_now - sum_then)`. A row is brought up to date
when a step reads it and, all rows at once, when the average is written
into the weights (`finalize_variable_values`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from schemaretrieval.rows import read_rows

__all__ = ["LazyAdam", "AveragedAdam", "default_optimizer", "summed_rows"]

DEFAULT_LEARNING_RATE = 1e-3
# fit ends on a moving average of the weights (docs/defaults.md). With the
# warm-up the cap binds only after 20,000 steps.
DEFAULT_EMA_MOMENTUM = 0.9995
# The average's momentum at step t is at most t / (t + warm_up): without it
# a run of a few hundred steps would end near its initial weights.
DEFAULT_WARM_UP = 10
# The log of a momentum of 0: exp of it is 0 in float64, so a row whose
# average skipped such a step takes its weight, as the dense average does.
LOG_OF_ZERO = -1e4
# A row's catch-up over the steps that skipped it sums this many of their
# terms one by one (the rest weigh (beta_1 / sqrt(beta_2)) ** 64, 0.1%).
CATCH_UP_WINDOW = 64
# Writing the averages into the weights (`finalize_variable_values`) goes a
# block of rows of this size at a time through a table larger than it.
FINALIZE_BLOCK_BYTES = 64 << 20


def summed_rows(gradient: tf.IndexedSlices) -> tuple[tf.Tensor, tf.Tensor]:
    """`(rows, values)` of a sparse gradient: its distinct rows, in the
    order they first occur, and the sum of its slices for each.

    The sum runs over the slices in their order, as `tf.convert_to_tensor`
    of the gradient (the dense path) sums them. (`tf.unique` compiles
    under XLA, its size bounded by the gradient's.)

    >>> g = tf.IndexedSlices(tf.constant([[1.0], [2.0], [4.0]]), tf.constant([5, 2, 5]))
    >>> rows, values = summed_rows(g)
    >>> rows.numpy().tolist(), values.numpy().ravel().tolist()
    ([5, 2], [5.0, 2.0])
    """
    rows, segment = tf.unique(gradient.indices)
    return rows, tf.math.unsorted_segment_sum(gradient.values, segment, tf.shape(rows)[0])


@keras.saving.register_keras_serializable(package="schemaretrieval")
class LazyAdam(keras.optimizers.Adam):
    """Adam that, for a variable whose gradient is a `tf.IndexedSlices` (an
    embedding table read by `ops.take` / `keras.layers.Embedding`),
    updates only the rows the gradient holds; dense Adam for the others.

    A row read at a step follows Adam with the global step's bias
    correction, its repeated reads summed as in the dense gradient; a row
    not read keeps its first and second moments and its weight. With
    `catch_up` (the default), a row read again is first brought to where
    dense Adam, which decays the moments of an unread row and keeps moving
    its weight, would have taken it over the steps that skipped it
    (`_catch_up`: exact but for epsilon's share of the denominator);
    without, it goes on from where its last read left it (TensorFlow
    Addons' LazyAdam). So a row read at every step, and every dense
    variable, ends where `keras.optimizers.Adam` takes it, and with the
    catch-up so does every row at its next read.

    With `use_ema`, the moving average is Keras's (momentum 0 at the first
    step, `ema_momentum` after) kept lazily per row (the module's
    docstring): the weights `fit` ends on are the dense average of the
    weights trained on, to float rounding. (A row that dense Adam moves
    over the steps that skip it moves here at its next read: its average
    takes the move later.)

    The lazy average needs the rows no step reads to hold still: with
    `use_ema` it refuses `weight_decay` and `gradient_accumulation_steps`,
    which move them (as would a variable constraint that moves them).
    Without an average, weight decay decays every row at every step, as
    Keras's does.

    Example: rows 0 and 2 of a 3-row table are read, row 1 is not.

    >>> import numpy as np
    >>> table = keras.Variable(np.ones((3, 2), "float32"))
    >>> opt = LazyAdam(learning_rate=0.1)
    >>> with tf.GradientTape() as tape:
    ...     loss = ops.sum(ops.take(table, np.array([0, 2, 2]), axis=0))
    >>> gradient = tape.gradient(loss, table.value)
    >>> type(gradient).__name__
    'IndexedSlices'
    >>> opt.apply([gradient], [table])
    >>> np.asarray(table, dtype=float).round(4).tolist()  # Adam's first step moves a read row by the learning rate
    [[0.9, 0.9], [1.0, 1.0], [0.9, 0.9]]
    """

    def __init__(self, learning_rate=DEFAULT_LEARNING_RATE, catch_up: bool = True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.catch_up = bool(catch_up)

    def get_config(self):
        return {**super().get_config(), "catch_up": self.catch_up}

    def build(self, var_list):
        if self.built:
            return
        if self.use_ema and (self.weight_decay is not None or self.gradient_accumulation_steps):
            raise ValueError(
                f"{type(self).__name__}: the lazy moving average needs the rows no step reads to hold still; "
                f"weight_decay={self.weight_decay} and gradient_accumulation_steps="
                f"{self.gradient_accumulation_steps} move them (set both to None, or use_ema=False)")
        super().build(var_list)
        if self.catch_up:
            # Per row, the step of its last update (-1: none yet).
            self._last_step = self._add_row_variables(var_list, "last_step", -1.0)
        if not self.use_ema:
            return
        # The sum of log momenta of the steps done; per row of each
        # average, its value at the row's last update (+inf: never updated,
        # so that the row takes its weight, as the dense average does at
        # step 0). float64: the sums reach -t (1 - ema_momentum), and float32
        # would lose P's digits to their difference.
        self._log_momentum_sum = self.add_variable(
            (), initializer="zeros", dtype="float64", aggregation="only_first_replica", name="log_momentum_sum")
        self._average_since = self._add_row_variables(var_list, "average_since", float("inf"))

    def _add_row_variables(self, var_list, name, value):
        """A float64 number per row (first axis) of each variable, `value` to
        begin with; None where Keras keeps no slots (overwrite_with_gradient)."""
        out = []
        for variable in var_list:
            if self._overwrite_variable_with_gradient(variable):
                out.append(None)
                continue
            # Colocated with the variable, as Keras places its slots.
            reference = variable.value if isinstance(variable, keras.Variable) else variable
            with self._distribution_strategy.extended.colocate_vars_with(reference):
                out.append(self.add_variable(
                    tuple(variable.shape[:1]), initializer=keras.initializers.Constant(value), dtype="float64",
                    name=f"{variable.path.replace('/', '_')}_{name}"))
        return out

    def _average_momentum(self, step):
        """The average's momentum at `step` (0 at the first): Keras's."""
        return ops.where(ops.equal(step, 0), 0.0, ops.cast(self.ema_momentum, "float32"))

    def _momentum_and_log_sum(self, dtype):
        """(this step's momentum in `dtype`, the sum of log momenta up to and
        including this step). The sum leaves out step 0, whose momentum
        is 0: every row's average starts there from its weight."""
        step = self.iterations
        momentum = ops.cast(self._average_momentum(ops.cast(step, "float32")), "float32")
        log = ops.maximum(ops.log(ops.cast(momentum, "float64")), LOG_OF_ZERO)
        log = ops.where(ops.equal(step, 0), 0.0, log)
        return ops.cast(momentum, dtype), self._log_momentum_sum + log

    def _caught_up(self, average, weights, since, log_sum):
        """Rows of an average last updated at `since` over rows of weights
        that held still since, brought up to `log_sum`: `P a + (1 - P) x`,
        P the product of the momenta between."""
        carry = self._per_row(ops.cast(ops.exp(log_sum - since), average.dtype), average)
        # As a + (1 - P)(x - a): a row whose average is its weight (one no
        # step has read) keeps it exactly.
        return ops.add(average, ops.multiply(1.0 - carry, ops.subtract(weights, average)))

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices):
            return self._sparse_update_step(gradient, variable, learning_rate)
        if not (self.use_ema or self.catch_up):
            return super().update_step(gradient, variable, learning_rate)
        before = ops.convert_to_tensor(variable)  # read before Adam moves it
        if self.catch_up:
            # Rows earlier sparse steps skipped (none, for a variable whose
            # gradient is always dense: then this changes nothing).
            index = self._get_variable_index(variable)
            slots = [self._momentums[index], self._velocities[index]]
            m, v, shift = self._catch_up(*(ops.convert_to_tensor(slot) for slot in slots), variable, None,
                                         learning_rate)
            for slot, value in zip(slots, (m, v)):
                self.assign(slot, value)
            self.assign(variable, ops.subtract(before, shift))
            self.assign(self._last_step[index], ops.full(self._last_step[index].shape, self._step(), "float64"))
        super().update_step(gradient, variable, learning_rate)
        if self.use_ema:
            self._average_rows(variable, None, before, ops.convert_to_tensor(variable))

    def _step(self):
        return ops.cast(self.iterations, "float64")

    def _catch_up(self, m, v, variable, rows, learning_rate):
        """Dense Adam over the steps since each row's last update, whose
        gradient for the row was 0, in closed form: after k such steps its
        moments are beta ** k times theirs and its weight has moved by
        `sum_j alpha_j beta_1 ** j m / (beta_2 ** (j / 2) sqrt(v) + epsilon)`,
        j = 1..k, alpha_j the learning rate with the bias correction of the
        j-th skipped step (the current learning rate: a schedule's changes
        over the skipped steps are not followed), epsilon scaled with
        sqrt(v). The first `CATCH_UP_WINDOW` terms are summed one by one, the
        rest (0.1% of the sum) with the last one's alpha; for all rows
        at once (`rows` None: a dense gradient) every term takes the first
        one's alpha, which is exact once Adam's bias correction has settled.
        Returns (m, v, shift of the weight) for `rows`."""
        dtype = m.dtype
        index = self._get_variable_index(variable)
        last_slot = self._last_step[index]
        last = ops.convert_to_tensor(last_slot) if rows is None else read_rows(last_slot, rows)
        skipped = ops.where(last < 0, 0.0, self._step() - 1.0 - last)
        # float32: the sums need no more, and float64 powers cost more than
        # the rest of the step; `skipped` counts in float64 (exact).
        beta_1, beta_2 = ops.cast(self.beta_1, "float32"), ops.cast(self.beta_2, "float32")
        lr = ops.cast(learning_rate, "float32")
        steps = ops.cast(skipped, "float32")

        def alpha(local_step, later=None):
            # at local_step + later: the powers as products, not one per term
            power_1, power_2 = ops.power(beta_1, local_step), ops.power(beta_2, local_step)
            if later is not None:
                power_1 = ops.expand_dims(power_1, -1) * ops.power(beta_1, later)
                power_2 = ops.expand_dims(power_2, -1) * ops.power(beta_2, later)
            return lr * ops.sqrt(1.0 - power_2) / (1.0 - power_1)

        if self.amsgrad:
            # v_hat holds its maximum while v decays: only m shrinks.
            ratio = beta_1
            denominator = ops.convert_to_tensor(self._velocity_hats[index]) if rows is None else read_rows(
                self._velocity_hats[index], rows)
        else:
            ratio = beta_1 / ops.sqrt(beta_2)
            denominator = v
        first = ops.cast(last + 2.0, "float32")  # Keras's local step of the first skipped step

        def geometric(start, count):  # sum of ratio ** j for j = start .. start + count - 1
            return ops.power(ratio, start) * (1.0 - ops.power(ratio, count)) / (1.0 - ratio)

        def one_alpha():
            return alpha(first) * geometric(1.0, steps)

        def term_by_term():
            j = ops.arange(1, CATCH_UP_WINDOW + 1, dtype="float32")
            terms = alpha(first, j - 1.0) * ops.power(ratio, j)
            window = ops.sum(ops.where(j <= ops.expand_dims(steps, -1), terms, 0.0), axis=-1)
            rest = ops.maximum(steps - CATCH_UP_WINDOW, 0.0)
            return window + alpha(first + CATCH_UP_WINDOW) * geometric(CATCH_UP_WINDOW + 1.0, rest)

        if rows is None:
            scale = one_alpha()
        else:
            # Once the bias correction of every row's first skipped step is 1
            # in float32, all terms take one alpha.
            earliest = ops.min(ops.where(skipped > 0, first, float("inf")))
            settled = ops.logical_and(ops.power(beta_2, earliest) < 1e-7, ops.power(beta_1, earliest) < 1e-7)
            scale = ops.cond(settled, one_alpha, term_by_term)
        decay_1, decay_2 = ops.power(beta_1, steps), ops.power(beta_2, steps)
        scale, decay_1, decay_2 = (self._per_row(ops.cast(x, dtype), m) for x in (scale, decay_1, decay_2))
        shift = ops.multiply(scale, ops.divide(m, ops.add(ops.sqrt(denominator), self.epsilon)))
        return ops.multiply(m, decay_1), ops.multiply(v, decay_2), shift

    @staticmethod
    def _per_row(values, like):
        """`values` (one per row) shaped to scale the rows of `like`."""
        for _ in range(len(like.shape) - len(values.shape)):
            values = ops.expand_dims(values, -1)
        return values

    def _sparse_update_step(self, gradient, variable, learning_rate):
        """Adam on the rows of `gradient` alone (dense Adam's own order of
        operations, so that a row read at every step matches it)."""
        dtype = variable.dtype
        rows, gradient = summed_rows(gradient)
        gradient = ops.cast(gradient, dtype)
        lr = ops.cast(learning_rate, dtype)
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), local_step)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        index = self._get_variable_index(variable)
        m_slot, v_slot = self._momentums[index], self._velocities[index]
        m = read_rows(m_slot, rows)
        v = read_rows(v_slot, rows)
        before = read_rows(variable, rows)
        weights = before
        if self.catch_up:
            m, v, shift = self._catch_up(m, v, variable, rows, learning_rate)
            weights = ops.subtract(before, shift)
            last_slot = self._last_step[index]
            self.assign(last_slot, tf.IndexedSlices(ops.broadcast_to(self._step(), ops.shape(rows)), rows))
        m = ops.add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        v = ops.add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        self.assign(m_slot, tf.IndexedSlices(m, rows))
        self.assign(v_slot, tf.IndexedSlices(v, rows))
        if self.amsgrad:
            v_hat_slot = self._velocity_hats[index]
            v = ops.maximum(read_rows(v_hat_slot, rows), v)
            self.assign(v_hat_slot, tf.IndexedSlices(v, rows))
        after = ops.subtract(weights, ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v), self.epsilon)))
        self.assign(variable, tf.IndexedSlices(after, rows))
        if self.use_ema:
            # The rows held `before` over the steps that skipped them.
            self._average_rows(variable, rows, before, after)

    def _average_rows(self, variable, rows, before, after):
        """This step's average for `rows` of `variable` (None: all of it),
        which held `before` since their last update and now hold `after`:
        brought up to date over the steps that skipped them, then moved."""
        index = self._get_variable_index(variable)
        average_slot = self._model_variables_moving_average[index]
        since_slot = self._average_since[index]
        if average_slot is None:
            return
        momentum, log_sum = self._momentum_and_log_sum(variable.dtype)
        average = ops.convert_to_tensor(average_slot) if rows is None else read_rows(average_slot, rows)
        since = ops.convert_to_tensor(since_slot) if rows is None else read_rows(since_slot, rows)
        caught_up = self._caught_up(average, before, since, self._log_momentum_sum)
        average = ops.add(ops.multiply(momentum, caught_up), ops.multiply(1.0 - momentum, after))
        if rows is None:
            self.assign(average_slot, average)
            self.assign(since_slot, ops.broadcast_to(log_sum, since_slot.shape))
        else:
            self.assign(average_slot, tf.IndexedSlices(average, rows))
            self.assign(since_slot, tf.IndexedSlices(ops.broadcast_to(log_sum, ops.shape(rows)), rows))

    def _update_model_variables_moving_average(self, trainable_variables):
        # Keras's hook, called once per step after every update_step (which
        # moved the averages of the variables it updated) and before
        # `iterations` counts the step: only the running sum moves here.
        if self.use_ema:
            _, log_sum = self._momentum_and_log_sum("float32")
            self._log_momentum_sum.assign(log_sum)

    def _overwrite_model_variables_with_average_value(self, trainable_variables):
        # finalize_variable_values (and ema_overwrite_frequency) write the
        # averages into the weights, every row's brought up to date first.
        for variable in trainable_variables:
            index = self._get_variable_index(variable)
            average_slot, since_slot = self._model_variables_moving_average[index], self._average_since[index]
            if average_slot is None:
                continue
            # In each replica's copy, as Keras's own overwrite writes them.
            self._distribution_strategy.extended.update(
                variable.value if isinstance(variable, keras.Variable) else variable, self._write_average,
                args=(average_slot.value, since_slot.value, self._log_momentum_sum.value), group=False)

    def _write_average(self, variable, average_slot, since_slot, log_sum):
        """Brings the average of every row of `variable` up to date and
        writes it into the variable: whole for a small one, else in blocks
        of rows (gather, scatter), so that a large table never has more
        than a block of temporaries beside it (a whole-table expression
        held four copies of it)."""
        row_bytes = variable.dtype.size * max(1, int(np.prod(variable.shape[1:])))
        if variable.shape.rank == 0 or variable.shape[0] * row_bytes <= FINALIZE_BLOCK_BYTES:
            average = self._caught_up(ops.convert_to_tensor(average_slot), ops.convert_to_tensor(variable),
                                      ops.convert_to_tensor(since_slot), log_sum)
            for target, value in ((average_slot, average), (variable, average),
                                  (since_slot, ops.broadcast_to(log_sum, since_slot.shape))):
                target.assign(value)
            return
        block = max(1, FINALIZE_BLOCK_BYTES // row_bytes)
        for start in range(0, variable.shape[0], block):
            rows = tf.range(start, min(start + block, variable.shape[0]))
            average = self._caught_up(read_rows(average_slot, rows), read_rows(variable, rows),
                                      read_rows(since_slot, rows), log_sum)
            for target, value in ((average_slot, average), (variable, average),
                                  (since_slot, ops.broadcast_to(log_sum, ops.shape(rows)))):
                target.scatter_update(tf.IndexedSlices(value, rows))


@keras.saving.register_keras_serializable(package="schemaretrieval")
class AveragedAdam(LazyAdam):
    """`LazyAdam` with `use_ema`: Keras's `fit` ends with the weights set
    to their exponential moving average. Unlike Keras's own average, whose
    momentum is `ema_momentum` from the first step, this one warms up: at
    step t it is `min(ema_momentum, t / (t + warm_up))`, as TensorFlow 1's
    `ExponentialMovingAverage(num_updates=t)` with warm_up 10, so a short
    run averages over its last steps rather than holding on to its initial
    weights. Until the cap, the average weighs step s of t about as
    `(s / t) ** warm_up`: with 10, it is mostly the last tenth of the run.

    `sparse_updates` (default True): embedding tables are updated lazily,
    and the average kept lazily (`LazyAdam`), so that a step costs in
    proportion to the rows it reads. False: dense Adam and a dense average
    over every weight at every step, as before issue #30 (a saved model
    whose config does not say loads so, with its optimizer state).

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
                 warm_up: float = DEFAULT_WARM_UP, sparse_updates: bool = True, **kwargs):
        if not warm_up > 0:
            raise ValueError(f"AveragedAdam: warm_up must be > 0, got {warm_up}")
        kwargs["use_ema"] = True
        super().__init__(learning_rate=learning_rate, ema_momentum=ema_momentum, **kwargs)
        self.warm_up = float(warm_up)
        self.sparse_updates = bool(sparse_updates)

    def get_config(self):
        return {**super().get_config(), "warm_up": self.warm_up, "sparse_updates": self.sparse_updates}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Saved before sparse updates existed: the dense optimizer, whose
        # state the file holds.
        return super().from_config({"sparse_updates": False, **config}, custom_objects=custom_objects)

    def _average_momentum(self, step):
        return ops.minimum(self.ema_momentum, step / (step + self.warm_up))

    # sparse_updates=False: Keras's dense Adam and a dense average.

    def build(self, var_list):
        if self.sparse_updates:
            return super().build(var_list)
        return keras.optimizers.Adam.build(self, var_list)

    def update_step(self, gradient, variable, learning_rate):
        if self.sparse_updates:
            return super().update_step(gradient, variable, learning_rate)
        return keras.optimizers.Adam.update_step(self, gradient, variable, learning_rate)

    def _update_model_variables_moving_average(self, trainable_variables):
        if self.sparse_updates:
            return super()._update_model_variables_moving_average(trainable_variables)
        # Keras's hook, called after each step's update and before
        # `iterations` counts it (so t is 0 at the first step).
        t = ops.cast(self.iterations, "float32")
        momentum = self._average_momentum(t)
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                m = ops.cast(momentum, variable.dtype)
                average.assign(m * average + (1.0 - m) * variable)

    def _overwrite_model_variables_with_average_value(self, trainable_variables):
        if self.sparse_updates:
            return super()._overwrite_model_variables_with_average_value(trainable_variables)
        return keras.optimizers.Adam._overwrite_model_variables_with_average_value(self, trainable_variables)


def default_optimizer(learning_rate: float = DEFAULT_LEARNING_RATE,
                      ema_momentum: float | None = DEFAULT_EMA_MOMENTUM) -> keras.optimizers.Optimizer:
    """The measured optimizer: `AveragedAdam(learning_rate, ema_momentum)`,
    or `LazyAdam` (no average) with `ema_momentum=None`; both update only
    the embedding rows a step reads.

    >>> opt = default_optimizer()
    >>> type(opt).__name__, round(float(opt.learning_rate), 6), opt.use_ema, opt.ema_momentum, opt.sparse_updates
    ('AveragedAdam', 0.001, True, 0.9995, True)
    >>> type(default_optimizer(3e-3, ema_momentum=None)).__name__
    'LazyAdam'
    """
    if ema_momentum is None:
        return LazyAdam(learning_rate)
    # 1 is a real average here: the warm-up's t / (t + warm_up) for the whole run.
    if not 0.0 < ema_momentum <= 1.0:
        raise ValueError(f"default_optimizer: ema_momentum must be in (0, 1] or None, got {ema_momentum}")
    return AveragedAdam(learning_rate, ema_momentum=ema_momentum)
