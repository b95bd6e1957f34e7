"""Run by tests/serving/test_request_fuzz.py in a fresh process: malformed requests to
exported SavedModels (TensorFlow alone) and to the Python indexes and `similar_items`.

    python request_fuzz.py savedmodel RESULTS START SEED EXPORT...
    python request_fuzz.py python RESULTS START SEED EXPORT

Enumerates the cases (the same list for the same exports and seed), runs them
from index START on, and appends one JSON line per case to RESULTS as soon as
it is done: ``{"i", "case", "outcome": "ok" | "error", "type", "message",
"expect"}``. ``expect`` is ``"ok"`` or a regular expression the error must
match. A case that ends the process leaves no line: the parent reports it and
starts a new process from the next case.

The ``savedmodel`` kind never imports schemaretrieval: a server has TensorFlow only.
"""

import json
import sys

import numpy as np

KIND, RESULTS, START, SEED = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
EXPORTS = sys.argv[5:]

BATCH = 3
K = 5
BIG_ROWS = 100_000
MEGABYTE = "x" * (1 << 20)
WRONG = ("string", "int32", "int64", "float32", "float64", "bool", "uint8")
TF_NAME = {"float32": "float", "float64": "double"}  # TensorFlow's names in its dtype error


# ---------------------------------------------------------------------------- SavedModel


def signature_inputs(meta, signature):
    """(name, dtype, rank, spec or None) of each input of a signature."""
    encoded = signature in ("recommend_encoded", "tower")
    inputs = []
    for spec in meta["features"]:
        dtype = spec["dtype"]
        if encoded:
            dtype = "int64" if spec["kind"] == "categorical" else "float32"
        inputs.append((spec["name"], dtype, 2 if spec["list"] else 1, dict(spec, dtype=dtype, encoded=encoded)))
    if signature in ("recommend", "recommend_encoded"):
        inputs.append(("excluded", "string" if meta["item_ids"] == "string" else "int64", 2, None))
        inputs.append(("k", "int32", 0, None))
    return inputs


class Rows(list):
    """A list input's rows of different lengths, sent as a ``tf.RaggedTensor`` or as
    Python lists: TensorFlow refuses both before the graph runs (docs/serving.md)."""

    def __init__(self, rows, dtype, ragged):
        super().__init__(rows)
        self.dtype, self.ragged = dtype, ragged


def valid_value(name, dtype, rank, spec, rows=BATCH):
    if name == "k":
        return np.int32(K)
    if name == "excluded":
        return np.full((rows, 2), "" if dtype == "string" else -1, object if dtype == "string" else np.int64)
    if dtype == "string":
        return np.array([["v1", ""]] * rows if rank == 2 else ["v1"] * rows, object)
    if dtype == "int64":
        low = spec["range"][0] if spec.get("range") else 0
        return np.array([[low, -1]] * rows if rank == 2 else [low] * rows, np.int64)
    return np.full(rows, 0.5, np.float32)


def as_dtype(value, dtype):
    """``value``'s shape in another dtype (strings: its values as text)."""
    value = np.asarray(value)
    if dtype == "string":
        return value.astype(str).astype(object)
    return np.zeros(value.shape, dtype) if value.dtype == object else value.astype(dtype)


def finite_expectation(spec, value):
    """None when the graph turns ``value`` (NaN, inf or -inf) into a finite number, else the error."""
    steps = dict((step, arg) for step, arg in (spec.get("transform") or [])) if not spec["encoded"] else {}
    if np.isnan(value) and "fill_missing" in steps:
        return None
    clip = steps.get("clip") or {}
    if np.isinf(value) and clip.get("max" if value > 0 else "min") is not None:
        return None
    if value == -np.inf and "log" in steps:  # log1p of the value floored at 0
        return None
    return rf"input {spec['name']}: expected finite numbers"


def huge_expectation(spec):
    """None when the graph bounds 1e30 (a clip's max, or the log), else the query tower's error:
    1e30 squares past float32's range, and the unit normalisation would return zeros."""
    steps = dict((step, arg) for step, arg in (spec.get("transform") or [])) if not spec["encoded"] else {}
    if (steps.get("clip") or {}).get("max") is not None or "log" in steps:
        return None
    return r"the query tower output is not a usable vector .* in rows:"


def savedmodel_cases(rng):
    """(description, target, signature, kwargs, expect) for every export and signature."""
    cases = []
    for export in EXPORTS:
        meta = json.load(open(f"{export}/serving.json"))
        size = meta["catalog_size"]
        for signature in ("serving_default", "recommend", "recommend_encoded", "query_embedding", "tower"):
            inputs = signature_inputs(meta, signature)
            base = {name: valid_value(name, dtype, rank, spec) for name, dtype, rank, spec in inputs}
            first = inputs[0][0]
            # "signature": the signatures map (TensorFlow numbers a wrong dtype's input);
            # "function": the restored tf.function, which checks each input in Python, by name
            for target in ("signature", "function"):
                def add(what, kwargs, expect, target=target):
                    cases.append((f"{export.rsplit('/', 1)[-1]} {target}:{signature} {what}", export, target,
                                  signature, kwargs, expect))

                add("valid", base, "ok")
                for name, dtype, rank, spec in inputs:
                    if rank == 2:  # every other row cut to one value
                        rows = [row[:1] if i % 2 else row for i, row in enumerate(np.asarray(base[name]).tolist())]
                        for ragged, what in ((True, "a RaggedTensor"), (False, "lists of other lengths")):
                            add(f"{name} as {what}", {**base, name: Rows(rows, dtype, ragged)},
                                r"'RaggedTensor' has no len|non-rectangular Python sequence")
                if target == "function":
                    for name, dtype, rank, spec in inputs:
                        for wrong in WRONG:
                            if wrong != dtype:
                                add(f"{name} as {wrong}", {**base, name: as_dtype(base[name], wrong)},
                                    rf"to TensorSpec\(shape=<unknown>, dtype=tf\.{dtype}, name='{name}'\)")
                    continue
                order = sorted(name for name, *_ in inputs)
                for name, dtype, rank, spec in inputs:
                    expected_shape = rf"input {name}: expected shape"
                    for shape_name, value in [("rank 0", np.asarray(base[name]).reshape(-1)[0] if rank else None),
                                              ("rank +1", np.asarray(base[name])[..., None]),
                                              ("rank 3", np.asarray(base[name]).reshape((1, 1, -1)) if rank != 3 else None),
                                              ("rank 1", np.asarray(base[name]).reshape(-1) if rank != 1 else None)]:
                        if value is not None:
                            add(f"{name} {shape_name}", {**base, name: value}, expected_shape)
                    for wrong in WRONG:
                        if wrong != dtype:
                            add(f"{name} as {wrong}", {**base, name: as_dtype(base[name], wrong)},
                                rf"input #{order.index(name)}\(zero-based\) was expected to be a "
                                rf"{TF_NAME.get(dtype, dtype)} tensor")
                    add(f"missing {name}", {n: v for n, v in base.items() if n != name}, rf"'{name}'")
                    if rank >= 1 and name != first:
                        more = np.concatenate([np.asarray(base[name])] * 2)
                        add(f"{name} with other rows", {**base, name: more}, rf"input {name}: expected one row per query")
                    if name == "k":
                        for k in (0, -1, size + 1, 2**31 - 1):
                            add(f"k={k}", {**base, "k": np.int32(k)}, rf"input k: expected an int32 in \[1, {size}\]")
                        add(f"k={size} (the catalog)", {**base, "k": np.int32(size)}, "ok")
                    elif name == "excluded":
                        unknown = np.array([["nobody", MEGABYTE]] * BATCH, object) if dtype == "string" \
                            else np.array([[-7, 2**62]] * BATCH, np.int64)
                        add("excluded unknown ids", {**base, name: unknown}, "ok")
                    elif dtype == "int64":
                        lo, hi = spec["range"] or (0, None)
                        for bad in (lo - 2 if rank == 2 else lo - 1, -(2**62), 2**62):
                            value = np.array([[bad, -1]] * BATCH if rank == 2 else [bad] * BATCH, np.int64)
                            add(f"{name}={bad}", {**base, name: value}, rf"column {name}: ids outside the schema domain")
                    elif dtype == "string":
                        value = np.array([[MEGABYTE, ""]] * BATCH if rank == 2 else [MEGABYTE] * BATCH, object)
                        add(f"{name} of 1 MB", {**base, name: value}, "ok")
                    elif dtype == "float32":
                        for bad in (np.nan, np.inf, -np.inf):
                            add(f"{name}={bad}", {**base, name: np.full(BATCH, bad, np.float32)},
                                finite_expectation(spec, bad) or "ok")
                        add(f"{name}=1e30", {**base, name: np.full(BATCH, 1e30, np.float32)},
                            huge_expectation(spec) or "ok")
                add("extra input", {**base, "bogus": np.zeros(BATCH, np.int64)}, "'bogus'")
                add("empty batch", {name: (value if name == "k" else np.asarray(value)[:0]) for name, value in base.items()},
                    "ok")
                if signature in ("serving_default", "recommend_encoded"):
                    big = {name: valid_value(name, dtype, rank, spec, rows=BIG_ROWS) for name, dtype, rank, spec in inputs}
                    add(f"{BIG_ROWS} rows", big, "ok")
                # random pairs of the faults above, from the seed: one of the two is named
                for _ in range(4):
                    a, b = rng.choice(len(inputs), 2, replace=False)
                    (na, *_), (nb, *_) = inputs[a], inputs[b]
                    add(f"{na} rank 3 and {nb} rank 0",
                        {**base, na: np.asarray(base[na]).reshape((1, 1, -1)), nb: np.asarray(base[nb]).reshape(-1)[0]},
                        rf"input ({na}|{nb}): expected shape")
    return cases


def run_savedmodel(case, loaded):
    import tensorflow as tf

    _, export, target, signature, kwargs, expect = case
    if signature == "tower":
        module = loaded[export + "/query_tower"]
        fn = module.signatures["serving_default"] if target == "signature" else module.serving_default
    else:
        module = loaded[export]
        fn = module.signatures[signature] if target == "signature" else getattr(module, signature)

    def tensor(value):
        if isinstance(value, Rows):
            return tf.ragged.constant(list(value), dtype=value.dtype) if value.ragged else list(value)
        return tf.constant(value, tf.string if np.asarray(value).dtype == object else None)

    args = {name: tensor(value) for name, value in kwargs.items()}
    out = fn(**args)
    return {name: list(value.shape) for name, value in out.items()}


# ---------------------------------------------------------------------------- Python


def python_cases(rng):
    cases = []
    export = EXPORTS[0]
    catalog = 50
    dim = 8
    for kind in ("brute", "flat", "hnsw", "ivf"):
        def add(what, kwargs, expect, kind=kind):
            cases.append((f"{kind}.search {what}", kind, kwargs, expect))

        queries = rng.normal(size=(BATCH, dim)).astype(np.float32)
        add("valid", {"query_embeddings": queries, "k": K}, "ok")
        add("one query of rank 1", {"query_embeddings": queries[0], "k": K}, "ok")
        for what, value in [("rank 0", np.float32(1.0)), ("rank 3", queries[None]), ("wrong width", queries[:, :3]),
                            ("strings", np.array([["a"] * dim])), ("None", None), ("objects", [[{}] * dim])]:
            add(f"query_embeddings {what}", {"query_embeddings": value, "k": K}, r"query_embeddings")
        for bad in (np.nan, np.inf):
            value = queries.copy()
            value[1, 2] = bad
            add(f"query_embeddings with {bad}", {"query_embeddings": value, "k": K},
                r"query_embeddings: expected finite numbers")
        add("empty batch", {"query_embeddings": queries[:0], "k": K}, "ok")
        add(f"{BIG_ROWS} rows", {"query_embeddings": rng.normal(size=(BIG_ROWS, dim)).astype(np.float32), "k": K}, "ok")
        for k in (0, -1, catalog + 1, 2.5, True, None, "5"):
            add(f"k={k!r}", {"query_embeddings": queries, "k": k}, r"\bk\b")
        add("k = the catalog", {"query_embeddings": queries, "k": catalog}, "ok")
        for what, value in [("one entry short", [[1]] * (BATCH - 1)), ("a string", "abc"), ("an int", 7),
                            ("unknown and huge ids", [[-5, 2**62]] * BATCH)]:
            add(f"exclude {what}", {"query_embeddings": queries, "k": K, "exclude": value},
                "ok" if "unknown" in what else r"exclude")
    item = "i3"  # the raw export's ids
    for what, item, k in [("valid", item, K), ("unknown item", 10**9, K), ("item None", None, K),
                          ("item of 1 MB", MEGABYTE, K), ("k=0", item, 0), ("k=-1", item, -1),
                          ("k above", item, catalog), ("k float", item, 2.5), ("k None", item, None)]:
        cases.append((f"similar_items {what}", "similar", {"item": item, "k": k},
                       "ok" if what == "valid" else (r"\bk\b" if what.startswith("k") else r"item id")))
    return cases


def run_python(case, state):
    _, kind, kwargs, _ = case
    if kind == "similar":
        from schemaretrieval.serving import client

        found = client.similar_items(EXPORTS[0], **kwargs)
        return {"rows": len(found)}
    scores, ids = state[kind].search(**kwargs)
    return {"scores": list(scores.shape), "ids": list(ids.shape)}


def python_state():
    from schemaretrieval.serving.indexes import BruteForce, Faiss

    vectors = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    ids = np.arange(100, 150)
    return {"brute": BruteForce().index(vectors, ids), "flat": Faiss("flat").index(vectors, ids),
            "hnsw": Faiss("hnsw").index(vectors, ids), "ivf": Faiss("ivf", nlist=4).index(vectors, ids)}


def main():
    rng = np.random.default_rng(SEED)
    if KIND == "savedmodel":
        import tensorflow as tf

        cases = savedmodel_cases(rng)
        loaded = {}
        for export in EXPORTS:
            loaded[export] = tf.saved_model.load(export)
            loaded[export + "/query_tower"] = tf.saved_model.load(export + "/query_tower")
        run, state = run_savedmodel, loaded
    else:
        cases = python_cases(rng)
        run, state = (lambda case, state: run_python(case, state)), python_state()
    with open(RESULTS, "a") as results:
        if START == 0:
            results.write(json.dumps({"total": len(cases)}) + "\n")
            results.flush()
        for i in range(START, len(cases)):
            case = cases[i]
            expect = case[-1]
            try:
                out = run(case, state)
                row = {"outcome": "ok", "out": out}
            except Exception as err:  # every error is recorded; the parent judges it
                row = {"outcome": "error", "type": type(err).__name__, "message": str(err)[:2000]}
            results.write(json.dumps({"i": i, "case": case[0], "expect": expect, **row}) + "\n")
            results.flush()


if __name__ == "__main__":
    main()
