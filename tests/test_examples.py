"""The docstring examples of every library module run and print what they
show (the models, samplers, training and serving examples fit small models)."""

import importlib
import inspect

import pytest
from helpers import module_examples_pass

import schemaretrieval as sr

# module -> the examples it has at least (a floor: an example removed or
# turned into plain text fails here)
EXAMPLES = {
    "baselines": 17,
    "data.movielens_like": 5,
    "data.splits": 11,
    "data.synthetic": 12,
    "data.tables": 36,
    "datasets": 8,
    "encoders": 6,
    "etl": 37,
    "evaluation": 16,
    "history": 5,
    "index": 12,
    "inputs": 7,
    "losses": 23,
    "models": 11,
    "optimizers": 6,
    "outputs": 8,
    "plots": 9,
    "samplers": 36,
    "schema": 20,
    "serving": 88,
    "tfrs": 4,
    "tfrs.datasets": 4,
    "tfrs.layers.factorized_top_k.brute_force": 7,
    "tfrs.layers.factorized_top_k.scann": 5,
    "tfrs.layers.factorized_top_k.streaming": 4,
    "tfrs.layers.factorized_top_k.top_k": 8,
    "tfrs.layers.loss": 19,
    "tfrs.metrics": 8,
    "tfrs.models": 6,
    "tfrs.tasks.base": 2,
    "tfrs.tasks.ranking": 4,
    "tfrs.tasks.retrieval": 5,
    "training": 66,
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_module_examples_run(name):
    module = importlib.import_module(f"schemaretrieval.{name}")
    assert module_examples_pass(module, at_least=EXAMPLES[name])


def _public(kind):
    """{qualified name: object} of what the library's modules export in
    __all__ that `kind` accepts (inspect.isclass, inspect.isfunction)."""
    modules = [sr] + [importlib.import_module(f"schemaretrieval.{name}") for name in EXAMPLES]
    return {f"{obj.__module__}.{obj.__qualname__}": obj
            for module in modules for obj in (getattr(module, name) for name in getattr(module, "__all__", ()))
            if kind(obj) and obj.__module__.startswith("schemaretrieval")}


@pytest.mark.parametrize("kind, at_least", [(inspect.isclass, 25), (inspect.isfunction, 50)],
                         ids=["classes", "functions"])
def test_every_public_class_and_function_has_an_example(kind, at_least):
    public = _public(kind)
    assert len(public) >= at_least
    assert [name for name, obj in sorted(public.items()) if ">>>" not in (obj.__doc__ or "")] == []
