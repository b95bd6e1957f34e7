"""Every option is checked where it is given, through `sr.arguments`: a bad value is
an error naming the function, the option and what it expects, never a silent
default, a truncation or a NaN loss later (the cases a probe of the public API found)."""

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import schemaretrieval as sr
import schemaretrieval.tfrs as tfrs
from helpers import small_model
from schemaretrieval import registry
from schemaretrieval.arguments import counts, flag, integer, number
from schemaretrieval.evaluation.baselines import EASE, Popularity
from schemaretrieval.retrieval.losses import compile_loss

NAN = float("nan")


def test_the_three_checks_take_numpys_types_and_refuse_bools_strings_and_nan():
    assert integer(np.int64(64), "fit", "batch_size") == 64 and type(integer(np.int32(3), "f", "k")) is int
    for bad in (True, 1.5, "3", None, 0):
        with pytest.raises(ValueError, match=rf"^f: k must be an integer >= 1, got {bad!r}$"):
            integer(bad, "f", "k")
    assert number(np.float32(0.5), "f", "x", at_least=0, below=1) == 0.5
    for bad in (NAN, float("inf"), "0.1", True, 1.0):
        with pytest.raises(ValueError, match=r"^f: x must be a finite number >= 0 and < 1, got "):
            number(bad, "f", "x", at_least=0, below=1)
    assert flag(np.bool_(False), "f", "b") is False
    with pytest.raises(TypeError, match="^f: b must be True or False, got 1$"):
        flag(1, "f", "b")
    assert counts([0, 2], "f", "c").dtype == np.float64
    for bad, what in (([1, -1], "a negative count at position 1"), ([[1]], "shape \\(1, 1\\)"),
                      (["a"], r"\['a'\]"), ([0, 0], None)):
        with pytest.raises(ValueError, match=f"must be a 1-D array of finite counts >= 0, got {what}" if what
                           else "f: c sum to zero: no item can be drawn"):
            counts(bad, "f", "c")
    with pytest.raises(ValueError, match=r"with one count per item \(3\), got 2"):
        counts([1, 2], "f", "c", length=3)


def test_fit_on_keras_inputs_checks_epochs_and_batch_size(schema):
    # Keras's own fit took epochs=0 as the default 12 here, and -1 as no training at all
    model = small_model(schema)
    rows = sr.data.synthetic(schema, 300, seed=0)
    data = sr.data.to_tf_dataset(rows, schema, 100)
    for epochs in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=rf"fit: epochs must be an integer >= 1, got {epochs!r}"):
            model.fit(data, epochs=epochs, verbose=0)
    with pytest.raises(ValueError, match="fit: batch_size must be an integer >= 1, got 0"):
        model.fit(sr.data.to_arrays(rows, schema), epochs=1, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="evaluate: batch_size must be an integer >= 1, got 0"):
        model.evaluate(rows, batch_size=0, verbose=0)
    assert model.built is False  # nothing ran


def test_sr_training_fit_takes_numpy_integers_and_checks_the_rest(schema):
    model = small_model(schema)
    rows = sr.data.synthetic(schema, 300, seed=0)
    history = sr.training.fit(model, rows, epochs=np.int64(1), batch_size=np.int64(100), verbose=0)
    assert len(history["loss"]) == 1  # was: "batch_size must be an integer >= 1, got 100"
    for option, value, message in (("seed", -1, "seed must be an integer >= 0"),
                                   ("shuffle", "no", "shuffle must be True or False"),
                                   ("verbose", "loud", "verbose must be 'auto', 0, 1 or 2"),
                                   ("ks", [0], "fit: ks must be a non-empty list of distinct ints >= 1"),
                                   ("callbacks", [5], "callbacks must be keras.callbacks.Callback instances"),
                                   # was: TypeError: 'History' object is not iterable
                                   ("callbacks", keras.callbacks.History(), r"callbacks must be a list of callbacks, "
                                                                            r"got one History; give \[History\(...\)\]")):
        with pytest.raises((ValueError, TypeError), match=message):
            sr.training.fit(model, rows, **{"epochs": 1, "verbose": 0, option: value})
    with pytest.raises(TypeError, match="fit: model must be a schemaretrieval model"):
        sr.training.fit("model", rows, epochs=1)
    # was: TypeError: argument of type 'SymbolicTensor' is not iterable
    with pytest.raises(TypeError, match=r"fit: x is an array of shape \(10, 3\); the towers read named columns"):
        model.fit(np.zeros((10, 3)), epochs=1, verbose=0)
    # was: "<DataFrame>: missing column", as if the training table lacked it
    catalog = sr.data.Catalog.from_interactions(rows, schema)
    with pytest.raises(ValueError, match=r"validation_data: missing column \['item_price'\]"):
        model.fit(rows, validation_data=rows.drop(columns=["item_price"]), catalog=catalog, epochs=1, verbose=0)


@pytest.mark.parametrize("options, error, message", [
    ({"logits_temperature": NAN}, ValueError, "ContrastiveOutput: logits_temperature must be a finite number > 0"),
    ({"logits_temperature": float("inf")}, ValueError, "logits_temperature must be a finite number > 0"),
    ({"negative_samplers": []}, ValueError, "negative_samplers"),  # was: in-batch in its place
    ({"l2_normalize": "no"}, TypeError, "TwoTowerModel: l2_normalize must be True or False, got 'no'"),
    ({"user_history": 1}, TypeError, "TwoTowerModel: user_history must be True or False"),
    ({"query_units": [1.5]}, ValueError, r"TwoTowerModel: query_units\[0\] must be an integer >= 1, got 1.5"),
    ({"candidate_units": 64}, ValueError, "candidate_units must be a non-empty list of layer widths"),
    ({"dropout": -0.1}, ValueError, "TwoTowerModel: dropout must be a finite number >= 0 and < 1"),
    ({"history_keep_rate": 7}, ValueError, r"history_keep_rate must be a finite number > 0 and <= 1"),
    ({"history_max_length": 1.5}, ValueError, "history_max_length must be an integer >= 1"),
    ({"outputs": "contrastive"}, TypeError, "outputs must be a ContrastiveOutput or BPROutput"),
    # was: accepted, then "Dimensions must be equal, but are 8 and 16" from inside fit
    ({"query_units": (8,), "candidate_units": (16,)}, ValueError, r"the towers' last widths must be equal \(the score "
                                                                  r"is the dot product of their outputs\), got "
                                                                  r"query_units \(8,\) and candidate_units \(16,\)"),
    # was: accepted and ignored
    ({"history_max_length": 5}, ValueError, "history_max_length set the user-history tower, which user_history=False "
                                            "does not build"),
])
def test_two_tower_model_options(schema, options, error, message):
    with pytest.raises(error, match=message):
        sr.TwoTowerModel(schema, **options)


def test_two_tower_model_needs_a_schema():
    with pytest.raises(TypeError, match="TwoTowerModel: schema must be a merlin Schema"):
        sr.TwoTowerModel(None)


@pytest.mark.parametrize("call, where", [
    # was: AttributeError: 'str' object has no attribute 'select_by_tag' (or 'tags', 'name')
    (lambda path: sr.data.synthetic(path, 10), "synthetic"),
    (lambda path: sr.data.Catalog.from_interactions(pd.DataFrame({"item_id": [1]}), path), "Catalog.from_interactions"),
    (lambda path: sr.data.Catalog.of_domain(path), "Catalog.of_domain"),
    (lambda path: sr.schema.query_schema(path), "query_schema"),
    (lambda path: sr.schema.candidate_schema(path), "candidate_schema"),
    (lambda path: sr.MatrixFactorizationModelV2(path, dim=8), "MatrixFactorizationModelV2"),
    (lambda path: sr.save_schema(path, "out.yaml"), "save_schema"),
    (lambda path: sr.InputBlockV2(path), "InputBlockV2"),
])
def test_a_schema_path_where_a_schema_goes_says_how_to_load_it(call, where):
    with pytest.raises(TypeError, match=rf"{where}: schema must be a merlin Schema \(sr.load_schema\(path\) reads a "
                                        r"YAML file\), got the str 'schemas/synthetic.yaml'"):
        call("schemas/synthetic.yaml")


def test_samplers_outputs_and_losses_check_their_options(schema):
    cases = [
        (lambda: sr.InBatchSampler(item_counts=[1.0, NAN]), "InBatchSampler: item_counts must be a 1-D array of "
                                                            "finite counts >= 0, got a NaN or inf at position 1"),
        (lambda: sr.CrossBatchSampler(item_counts=[-1.0, 2.0]), "CrossBatchSampler: item_counts .* a negative count"),
        (lambda: sr.CrossBatchSampler(capacity=2.5), "CrossBatchSampler: capacity must be an integer >= 1"),
        (lambda: sr.UniformSampler(num_samples=True), "UniformSampler: num_samples must be an integer >= 1"),
        (lambda: sr.PopularitySampler(smoothing=NAN), "PopularitySampler: smoothing must be a finite number >= 0"),
        (lambda: sr.ContrastiveOutput(num_hard_negatives=2.5), "num_hard_negatives must be an integer >= 1"),
        (lambda: sr.ContrastiveOutput(store_negative_ids="no"), "store_negative_ids must be True or False"),
        (lambda: sr.losses.HingeLoss(margin=float("inf")), "HingeLoss: margin must be a finite number > 0"),
        (lambda: sr.MLPBlock([4, 1.7]), r"MLPBlock: dimensions\[1\] must be an integer >= 1, got 1.7"),
        (lambda: sr.Encoder(schema.select_by_tag(sr.Tags.USER), "notalayer"), "Encoder: block 0 must be a Keras"),
        (lambda: tfrs.tasks.Retrieval(temperature=float("inf")), "Retrieval: temperature must be a finite"),
        (lambda: tfrs.tasks.Retrieval()(np.eye(3, dtype="float32"), np.eye(3, dtype="float32")[:, :2]),
         r"Retrieval: query_embeddings \(3, 3\) and candidate_embeddings \(3, 2\) differ in width"),
        (lambda: tfrs.tasks.Retrieval(remove_accidental_hits=True)(
            np.eye(3, dtype="float32"), np.eye(3, dtype="float32"), candidate_ids=[1, 2]),
         "Retrieval: candidate_ids has 2 ids for 3 candidate_embeddings rows"),
        (lambda: sr.CrossBatchSampler(refresh=1), "CrossBatchSampler: refresh must be None, True or False"),
        (lambda: compile_loss("bprr"), r"loss 'bprr' is neither .* \(did you mean 'bpr'\?\)"),
        (lambda: sr.PopularityBasedSamplerV2(max_id=10.7), "PopularityBasedSamplerV2: max_id must be an integer"),
        (lambda: tfrs.layers.factorized_top_k.Streaming(num_parallel_calls=True), "num_parallel_calls must be an"),
        (lambda: registry.get("sampler", 5), "a sampler must be a registered name"),
        (lambda: registry.names("samplers"), "unknown registry kind 'samplers'; known: sampler, loss, input"),
    ]
    for build, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            build()
    catalog = sr.data.Catalog({"item_id": [3, 1]}, schema.select_by_name(["item_id"]), counts=[2, 5])
    assert catalog.counts.tolist() == [5.0, 2.0]  # sorted by id with their items
    with pytest.raises(ValueError, match=r"Catalog: counts must be .* with one count per item \(2\), got 3"):
        sr.data.Catalog({"item_id": [3, 1]}, schema.select_by_name(["item_id"]), counts=[2, 5, 1])


def test_baselines_check_l2_k_and_their_rows():
    train = pd.DataFrame({"u": [1, 1, 2], "i": [7, 8, 7]})
    for l2 in (NAN, -0.5, 0, "a"):
        with pytest.raises(ValueError, match="EASE: l2 must be a finite number > 0"):
            EASE(l2=l2)
    with pytest.raises(ValueError, match="EASE.fit: train has no rows"):  # was LAPACK's potri message
        EASE().fit(train.iloc[:0], "u", "i")
    with pytest.raises(ValueError, match=r"EASE.fit: 1 missing ids in column 'i' \(None/NaN\), first at position 2; expected an id"):
        EASE().fit(train.assign(i=[7, 8, None]), "u", "i")  # was: the row dropped
    with pytest.raises(ValueError, match="Popularity.fit: train has no rows"):  # was an empty model
        Popularity().fit(train.iloc[:0], "u", "i")
    with pytest.raises(ValueError, match=r"Popularity.fit: 1 missing ids in column 'i' \(None/NaN\), first at position 1"):
        Popularity().fit(train.assign(i=[7, None, 7]), "u", "i")  # was: the row dropped
    pop = Popularity().fit(train, "u", "i")
    with pytest.raises(ValueError, match="ranking: chunk_bytes must be an integer >= 1, got 0"):
        pop.evaluate_topk(train, chunk_bytes=0)
    with pytest.raises(ValueError, match="Popularity.recommend: k must be an integer >= 1, got 0"):
        pop.recommend([1], k=0)
    with pytest.raises(ValueError, match="Popularity.evaluate_topk: data has no rows"):
        pop.evaluate_topk(train.iloc[:0])


def test_splits_refuse_what_would_be_an_empty_or_guessed_part():
    frame = pd.DataFrame({"user_id": [1, 1, 1, 2, 2], "timestamp": [3.0, 1.0, 2.0, 5.0, 4.0]})
    with pytest.raises(ValueError, match="leave_last_n_out: n must be an integer >= 1, got 1.5"):
        sr.data.leave_last_n_out(frame, 1.5)
    with pytest.raises(ValueError, match="min_train must be an integer >= 0"):
        sr.data.leave_last_n_out(frame, 1, min_train=-1)
    with pytest.raises(ValueError, match=r"the test part is empty \(5 rows, n 1, min_train 3\)"):
        sr.data.leave_last_n_out(frame, 1, min_train=3)
    with pytest.raises(ValueError, match=r"leave_last_n_out: 1 missing times in column 'timestamp' \(None/NaN\), first at position 4"):
        sr.data.leave_last_n_out(frame.assign(timestamp=[3.0, 1.0, 2.0, 5.0, NAN]), 1)  # NaN sorted as the latest
    with pytest.raises(ValueError, match=r"random_split: the test part is empty \(5 rows, test_fraction 0.01\)"):
        sr.data.random_split(frame, 0.01)
    with pytest.raises(ValueError, match="random_split: seed must be an integer >= 0"):
        sr.data.random_split(frame, 0.2, seed=-1)
    with pytest.raises(TypeError, match="random_split: data must be a pandas DataFrame"):
        sr.data.random_split("x.parquet", 0.2)
    with pytest.raises(ValueError, match="time_split: cutoff must be a time, got nan"):
        sr.data.time_split(frame, cutoff=NAN)
    with pytest.raises(ValueError, match=r"time_split: the test part is empty \(5 rows, cutoff 1000\)"):
        sr.data.time_split(frame, cutoff=1000)


def test_a_top_k_layers_call_checks_k_and_takes_numpys_int():
    layer = tfrs.layers.factorized_top_k.BruteForce(k=2).index(np.eye(3, dtype="float32"))
    queries = tf.constant(np.eye(3, dtype="float32"))
    for k in (0, 1.5, "2"):
        with pytest.raises(ValueError, match=f"BruteForce: k must be an integer >= 1, got {k!r}"):
            layer(queries, k=k)
    with pytest.raises(ValueError, match="BruteForce: k=5 is more than the 3 candidates indexed"):
        layer(queries, k=np.int64(5))  # was TensorFlow's "input must have at least k columns"
    assert layer(queries, k=np.int64(3))[1].shape == (3, 3)
