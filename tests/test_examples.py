"""The docstring examples of every library module run and print what they
show (the models, samplers, training and serving examples fit small models)."""

import importlib
import inspect
import pkgutil

import pytest
from helpers import module_examples_pass

import schemaretrieval as sr

# module -> the examples it has at least (a floor: an example removed or
# turned into plain text fails here)
EXAMPLES = {
    "arguments": 12,
    "data.batches": 17,
    "data.catalog": 12,
    "data.checks": 5,
    "data.ecommerce": 7,
    "data.exclusions": 9,
    "data.loader": 16,
    "data.movielens_like": 8,
    "data.parquet": 17,
    "data.presets": 2,
    "data.raw_log": 3,
    "data.read": 27,
    "data.splits": 11,
    "data.synthetic": 11,
    "data.unique_rows": 7,
    "data.validate": 19,
    "datasets.lastfm": 8,
    "datasets.movielens": 9,
    "etl.artifacts": 21,
    "etl.engine": 11,
    "etl.inputs": 10,
    "etl.options": 11,
    "etl.rows": 18,
    "etl.run": 29,
    "etl.time": 3,
    "etl.workflow": 10,
    "evaluation.baselines": 17,
    "evaluation.keras_metrics": 15,
    "evaluation.metrics": 1,
    "evaluation.ranking": 8,
    "evaluation.report": 2,
    "layers.embeddings": 8,
    "layers.encoder": 22,
    "layers.history": 5,
    "layers.input_block": 17,
    "layers.l2_norm": 2,
    "layers.mlp": 3,
    "models.defaults": 2,
    "models.factory": 4,
    "models.loading": 6,
    "models.matrix_factorization": 6,
    "models.topk_encoder": 14,
    "models.two_tower": 8,
    "progress": 16,
    "rows": 2,
    "registry": 5,
    "retrieval.logits_loss": 6,
    "retrieval.losses": 15,
    "retrieval.outputs.base": 9,
    "retrieval.outputs.bpr": 1,
    "retrieval.outputs.contrastive": 2,
    "retrieval.samplers.base": 7,
    "retrieval.samplers.catalog": 22,
    "retrieval.samplers.cross_batch": 6,
    "retrieval.samplers.in_batch": 7,
    "retrieval.softmax": 1,
    "retrieval.topk": 13,
    "schema.columns": 26,
    "schema.errors": 5,
    "schema.io": 6,
    "schema.validation": 10,
    "schemas": 2,
    "serving.client": 34,
    "serving.export": 18,
    "serving.indexes.base": 6,
    "serving.indexes.brute_force": 3,
    "serving.indexes.faiss_index": 5,
    "serving.requests": 13,
    "serving.recommend": 16,
    "serving.tuning": 11,
    "training.across_epochs": 8,
    "training.callbacks": 24,
    "training.checkpoints": 23,
    "training.defaults": 6,
    "training.executions": 7,
    "training.fit": 16,
    "training.optimizers": 10,
    "training.plots": 9,
    "training.svd_start": 10,
    "training.weights": 10,
    "upstream": 3,
    "tfrs": 4,
    "tfrs.datasets": 4,
    "tfrs.layers.factorized_top_k.brute_force": 7,
    "tfrs.layers.factorized_top_k.scann": 5,
    "tfrs.layers.factorized_top_k.streaming": 4,
    "tfrs.layers.factorized_top_k.top_k": 8,
    "tfrs.layers.loss": 19,
    "tfrs.metrics": 8,
    "tfrs.models": 6,
    "tfrs.tasks.base": 4,
    "tfrs.tasks.ranking": 4,
    "tfrs.tasks.retrieval": 5,
}
# Modules whose docstrings hold no example (packages that only re-export,
# constants, the CLI's argument tables): none may hold a public class or function.
NO_EXAMPLES = {"data", "datasets", "etl", "evaluation", "layers", "models", "replicas",
               "retrieval", "retrieval.outputs", "retrieval.samplers", "schema", "serving", "serving.indexes",
               "tfrs.layers", "tfrs.layers.factorized_top_k", "tfrs.tasks", "training"}


def _modules():
    return sorted(info.name.removeprefix("schemaretrieval.")
                  for info in pkgutil.walk_packages(sr.__path__, "schemaretrieval.")
                  if not info.name.endswith("__main__") and not info.name.startswith("schemaretrieval.cli"))


def test_every_module_is_listed():
    assert sorted(set(EXAMPLES) | NO_EXAMPLES) == _modules()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_module_examples_run(name):
    module = importlib.import_module(f"schemaretrieval.{name}")
    assert module_examples_pass(module, at_least=EXAMPLES[name])


def _public(kind):
    """{qualified name: object} of what the library's modules export in
    __all__ that `kind` accepts (inspect.isclass, inspect.isfunction)."""
    modules = [sr] + [importlib.import_module(f"schemaretrieval.{name}") for name in _modules()]
    return {f"{obj.__module__}.{obj.__qualname__}": obj
            for module in modules for obj in (getattr(module, name) for name in getattr(module, "__all__", ()))
            if kind(obj) and obj.__module__.startswith("schemaretrieval")}


@pytest.mark.parametrize("kind, at_least", [(inspect.isclass, 40), (inspect.isfunction, 80)],
                         ids=["classes", "functions"])
def test_every_public_class_and_function_has_an_example(kind, at_least):
    public = _public(kind)
    assert len(public) >= at_least
    assert [name for name, obj in sorted(public.items()) if ">>>" not in (obj.__doc__ or "")] == []
