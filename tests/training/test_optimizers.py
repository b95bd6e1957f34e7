"""AveragedAdam, LazyAdam and default_optimizer: the moving average that
training ends on, and updates of only the embedding rows a step read."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import schemaretrieval as sr
from schemaretrieval.training.optimizers import AveragedAdam, LazyAdam


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
    assert sr.default_optimizer().sparse_updates
    plain = sr.default_optimizer(2e-3, ema_momentum=None)
    assert (type(plain), plain.use_ema, round(float(plain.learning_rate), 6)) == (LazyAdam, False, 2e-3)
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


# --------------------------------------------------------------------------
# Sparse updates (issue #30)
# --------------------------------------------------------------------------

ROWS, DIM = 8, 3


def _small_model(seed=0):
    """An embedding table and a dense layer over the rows a batch reads."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((2,), dtype="int32"), keras.layers.Embedding(ROWS, DIM),
                             keras.layers.Flatten(), keras.layers.Dense(1)])


def _train(model, optimizer, batches, dense_gradients=False, every_step=None):
    """Steps of squared error towards 1 on `batches` of ids [B, 2]; calls
    `every_step(step)` after each. The table's gradient is a
    tf.IndexedSlices (made dense with `dense_gradients`)."""
    for step, ids in enumerate(batches):
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(model(np.asarray(ids, "int32")) - 1.0))
        gradients = tape.gradient(loss, [v.value for v in model.trainable_variables])
        assert isinstance(gradients[0], tf.IndexedSlices)
        if dense_gradients:
            gradients = [tf.convert_to_tensor(g) for g in gradients]
        optimizer.apply(gradients, model.trainable_variables)
        if every_step is not None:
            every_step(step)


def _values(variables):
    return [np.asarray(v).copy() for v in variables]


# Row 1 read at every step, twice at the first; row 3 at steps 0 and 2; row 5
# at step 1; rows 0, 2, 4, 6, 7 never.
BATCHES = [[[1, 3], [1, 1]], [[1, 5], [5, 1]], [[3, 1], [1, 3]]]


def test_rows_no_step_read_keep_their_weights_and_moments():
    model = _small_model()
    optimizer = LazyAdam(learning_rate=0.1)
    table = model.trainable_variables[0]
    before = np.asarray(table).copy()
    seen = {}

    def record(step):
        m, v = optimizer._momentums[0], optimizer._velocities[0]
        seen[step] = (np.asarray(table).copy(), np.asarray(m).copy(), np.asarray(v).copy())

    _train(model, optimizer, BATCHES, every_step=record)
    never = [0, 2, 4, 6, 7]
    np.testing.assert_array_equal(seen[2][0][never], before[never])
    assert not seen[2][1][never].any() and not seen[2][2][never].any()
    # Row 3 is not read at step 1: its weight and moments stay as step 0 left
    # them; row 5, read only then, keeps what step 1 gave it.
    for k in range(3):
        np.testing.assert_array_equal(seen[1][k][3], seen[0][k][3])
        np.testing.assert_array_equal(seen[2][k][5], seen[1][k][5])
    assert not np.array_equal(seen[1][0][3], before[3])


def test_without_catch_up_a_row_skipped_by_a_step_by_hand():
    # TensorFlow Addons' lazy Adam. Row 2 read at steps 0 and 2 with
    # gradients g0 and g2: its moments do not decay at step 1, and step 2's
    # bias correction is the global step's (3).
    table = keras.Variable(np.zeros((4, 2), "float32"))
    optimizer = LazyAdam(learning_rate=0.1, beta_1=0.9, beta_2=0.99, epsilon=1e-7, catch_up=False)
    g0, g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 0.5]), np.array([3.0, 1.0])
    for row, g in ((2, g0), (0, g1), (2, g2)):
        optimizer.apply([tf.IndexedSlices(tf.constant([g], "float32"), tf.constant([row]))], [table])
    m = 0.1 * g0
    v = 0.01 * g0**2
    w = -0.1 * np.sqrt(1 - 0.99) / (1 - 0.9) * m / (np.sqrt(v) + 1e-7)
    m = m + (g2 - m) * 0.1
    v = v + (g2**2 - v) * 0.01
    w = w - 0.1 * np.sqrt(1 - 0.99**3) / (1 - 0.9**3) * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(np.asarray(table)[2], w, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(optimizer._momentums[0])[2], m, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(optimizer._velocities[0])[2], v, rtol=1e-6)


# Row 0 skips steps 1-4, row 2 steps 0 and 3-4, row 3 every step; the last step reads rows 0-2.
SKIPPING_READS = [[0, 1], [1], [1, 2], [1], [1, 1], [2, 0, 1]]
# Row 0 skips 150 steps: past the window summed term by term.
LONG_GAP = [[0, 1]] + [[1, 2]] * 150 + [[0, 1, 2]]


@pytest.mark.parametrize("reads, start, rtol", [(SKIPPING_READS, 10**6, 1e-5), (SKIPPING_READS, 0, 1e-5),
                                                (LONG_GAP, 0, 1e-3)],
                         ids=["bias-correction-settled", "from-the-first-step", "a-long-gap"])
def test_a_row_skipped_by_steps_is_caught_up_where_dense_adam_takes_it(reads, start, rtol):
    # Dense Adam moves a row that steps skip on its decaying momentum; with
    # catch_up (the default) the row gets there at its next read, but for
    # epsilon (and, past 64 skipped steps, the bias correction of the last
    # 0.1% of the move).
    rng = np.random.default_rng(1)
    gradients = [rng.normal(size=(len(r), DIM)).astype("float32") for r in reads]
    runs = []
    for optimizer in (LazyAdam(learning_rate=0.01), keras.optimizers.Adam(learning_rate=0.01)):
        table = keras.Variable(np.zeros((4, DIM), "float32"))
        optimizer.build([table])
        optimizer.iterations.assign(start)
        for rows, values in zip(reads, gradients):
            gradient = tf.IndexedSlices(tf.constant(values), tf.constant(rows), tf.constant([4, DIM]))
            optimizer.apply([gradient if isinstance(optimizer, LazyAdam) else tf.convert_to_tensor(gradient)],
                            [table])
        runs.append([np.asarray(x) for x in (table, optimizer._momentums[0], optimizer._velocities[0])])
    (lazy, m, v), (dense, dense_m, dense_v) = runs
    np.testing.assert_allclose(lazy, dense, rtol=rtol, atol=1e-7)
    # beta ** k at once, where dense Adam rounds k products
    np.testing.assert_allclose(m, dense_m, rtol=1e-5)
    np.testing.assert_allclose(v, dense_v, rtol=1e-5)
    assert not lazy[3].any()


def test_where_every_step_reads_the_same_rows_lazy_adam_is_keras_adam():
    # Dense Adam then never moves the other rows either (their moments stay
    # 0), so the two must agree on every weight; duplicate reads are summed
    # as the dense gradient sums them.
    batches = [[[1, 3], [1, 1]], [[3, 1], [1, 3]], [[1, 1], [3, 3]]]
    lazy, dense = _small_model(), _small_model()
    _train(lazy, LazyAdam(learning_rate=0.1), batches)
    _train(dense, keras.optimizers.Adam(learning_rate=0.1), batches, dense_gradients=True)
    for a, b in zip(lazy.trainable_variables, dense.trainable_variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7, err_msg=a.path)


def test_keras_adam_moves_rows_no_step_read_and_so_does_the_dense_averaged_adam():
    # What sparse_updates=False keeps: row 3's weight moves at step 1, which did not read it.
    for optimizer in (keras.optimizers.Adam(learning_rate=0.1), AveragedAdam(0.1, sparse_updates=False)):
        model = _small_model()
        seen = {}
        _train(model, optimizer, BATCHES, every_step=lambda step: seen.setdefault(step, _values(model.weights)[0]))
        assert not np.array_equal(seen[1][3], seen[0][3])


def _dense_average(trajectory, momentum):
    """The moving average by its definition, in float64, over the weights
    after each step."""
    average = None
    for t, weights in enumerate(trajectory):
        average = weights.astype("float64") if average is None else (
            momentum(t) * average + (1 - momentum(t)) * weights)
    return average


@pytest.mark.parametrize("finalize_between", [False, True], ids=["at-the-end", "also-between-epochs"])
def test_the_lazy_average_is_the_dense_average_of_the_weights_trained_on(finalize_between):
    # finalize_between: training.fit's pattern, the average written in and
    # the training weights put back after each "epoch" (every second step).
    model = _small_model()
    optimizer = AveragedAdam(learning_rate=0.1, ema_momentum=0.5, warm_up=3)
    trajectory = []

    def record(step):
        trajectory.append(_values(model.trainable_variables))
        if finalize_between and step % 2 == 1:
            optimizer.finalize_variable_values(model.trainable_variables)
            for variable, value in zip(model.trainable_variables, trajectory[-1]):
                variable.assign(value)

    _train(model, optimizer, BATCHES * 3, every_step=record)
    optimizer.finalize_variable_values(model.trainable_variables)
    for i, variable in enumerate(model.trainable_variables):
        expected = _dense_average([weights[i] for weights in trajectory], lambda t: min(0.5, t / (t + 3)))
        np.testing.assert_allclose(np.asarray(variable), expected, rtol=1e-6, atol=1e-7, err_msg=variable.path)
    # Rows no step read end where they started, as under the dense average.
    np.testing.assert_array_equal(np.asarray(model.trainable_variables[0])[[0, 2]], trajectory[0][0][[0, 2]])


def test_lazy_adams_use_ema_is_keras_average_kept_lazily():
    # Keras's rule (momentum 0 at step 0, then ema_momentum) on the same
    # trajectory as Keras's Adam: every step reads the same rows.
    batches = [[[1, 3], [1, 1]], [[3, 1], [1, 3]]] * 3
    lazy, dense = _small_model(), _small_model()
    ours = LazyAdam(learning_rate=0.1, use_ema=True, ema_momentum=0.7)
    keras_own = keras.optimizers.Adam(learning_rate=0.1, use_ema=True, ema_momentum=0.7)
    _train(lazy, ours, batches)
    _train(dense, keras_own, batches, dense_gradients=True)
    ours.finalize_variable_values(lazy.trainable_variables)
    keras_own.finalize_variable_values(dense.trainable_variables)
    for a, b in zip(lazy.trainable_variables, dense.trainable_variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7, err_msg=a.path)


def test_finalizing_twice_writes_the_same_weights():
    model = _small_model()
    optimizer = AveragedAdam(learning_rate=0.1)
    _train(model, optimizer, BATCHES)
    optimizer.finalize_variable_values(model.trainable_variables)
    once = _values(model.trainable_variables)
    optimizer.finalize_variable_values(model.trainable_variables)
    for a, b in zip(once, _values(model.trainable_variables)):
        np.testing.assert_array_equal(a, b)


def test_the_sparse_step_compiles_under_xla_and_matches_the_graph_step():
    # Keras compiles the step with XLA on a GPU by default (jit_compile="auto");
    # tf.unique's result there has a bounded dynamic size. tf.function
    # directly: Keras turns XLA off once any test has enabled op determinism.
    runs = []
    for jit in (False, True):
        model = _small_model()
        optimizer = AveragedAdam(learning_rate=0.1)
        optimizer.build(model.trainable_variables)

        @tf.function(jit_compile=jit)
        def step(ids):
            with tf.GradientTape() as tape:
                loss = ops.mean(ops.square(model(ids) - 1.0))
            optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

        for ids in BATCHES * 2:
            step(tf.constant(ids, "int32"))
        optimizer.finalize_variable_values(model.trainable_variables)
        runs.append(_values(model.trainable_variables))
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_optimizer_state_saves_and_loads_with_the_model(tmp_path):
    ids, y = np.array([[1, 3], [1, 1], [5, 3], [2, 1]], "int32"), np.ones((4, 1), "float32")
    model = _small_model()
    model.compile(optimizer=AveragedAdam(learning_rate=0.1), loss="mse")
    model.fit(ids, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert (type(loaded.optimizer), loaded.optimizer.sparse_updates) == (AveragedAdam, True)
    # Keras names the slots after the variables' paths, which differ in a loaded model.
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    assert sum(v.path.endswith("average_since") for v in loaded.optimizer.variables) == 3
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    # Both train on alike from there.
    for m in (model, loaded):
        m.fit(ids, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.trainable_variables, loaded.trainable_variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_a_config_saved_before_sparse_updates_loads_the_dense_optimizer():
    config = AveragedAdam(learning_rate=3e-3).get_config()
    assert config["sparse_updates"] is True
    del config["sparse_updates"]
    assert AveragedAdam.from_config(config).sparse_updates is False
    assert AveragedAdam.from_config({**config, "sparse_updates": True}).sparse_updates is True


def test_the_lazy_average_refuses_what_moves_rows_no_step_reads():
    variable = keras.Variable(np.zeros((3, 2), "float32"))
    for kwargs in ({"weight_decay": 0.01}, {"gradient_accumulation_steps": 2}):
        with pytest.raises(ValueError, match="lazy moving average needs the rows no step reads to hold still"):
            AveragedAdam(**kwargs).build([variable])
    AveragedAdam(sparse_updates=False, weight_decay=0.01).build([variable])  # the dense average can


def test_a_table_larger_than_a_block_is_written_a_block_at_a_time_alike(monkeypatch):
    # finalize goes through a large table a block of rows at a time (its
    # temporaries then stay a block); the weights written are the same.
    from schemaretrieval.training import optimizers

    written = []
    for block_bytes in (optimizers.FINALIZE_BLOCK_BYTES, 2 * DIM * 4):  # whole, then blocks of 2 rows
        monkeypatch.setattr(optimizers, "FINALIZE_BLOCK_BYTES", block_bytes)
        model = _small_model()
        optimizer = AveragedAdam(learning_rate=0.1)
        _train(model, optimizer, BATCHES)
        optimizer.finalize_variable_values(model.trainable_variables)
        written.append(_values(model.trainable_variables) + _values(optimizer.variables))
    for a, b in zip(*written):
        np.testing.assert_array_equal(a, b)


def test_catch_up_round_trips_through_the_config():
    for cls in (LazyAdam, AveragedAdam):
        optimizer = cls(learning_rate=3e-3, catch_up=False)
        for copy in (cls.from_config(optimizer.get_config()),
                     keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(optimizer))):
            assert (type(copy), copy.catch_up) == (cls, False)
        assert cls().catch_up is True
