"""TensorFlow Recommenders' retrieval API on TensorFlow 2.21 and Keras 3.

A TFRS 0.7.7 retrieval program runs with its import line changed::

    import schemaretrieval.tfrs as tfrs      # was: import tensorflow_recommenders as tfrs

and nothing else: ``tfrs.Model`` (``tfrs.models.Model``),
``tfrs.tasks.Retrieval``, ``tfrs.tasks.Ranking``, ``tfrs.metrics.FactorizedTopK``,
``tfrs.layers.factorized_top_k.BruteForce`` / ``Streaming`` / ``ScaNN`` and
``tfrs.layers.loss`` take TFRS's arguments and give TFRS's numbers
(tests/test_tfrs_*.py check them against figures TFRS 0.7.7 computed,
tests/tfrs/reference/). docs/migrating.md lists what differs and why;
examples/06-tfrs-basic-retrieval.ipynb is TFRS's basic-retrieval tutorial
run this way.

>>> import numpy as np
>>> import schemaretrieval.tfrs as tfrs
>>> task = tfrs.tasks.Retrieval()
>>> round(float(task(np.eye(2, dtype="float32"), np.eye(2, dtype="float32"))), 4)
0.6265
"""

from schemaretrieval.tfrs import layers, metrics, models, tasks
from schemaretrieval.tfrs.models import Model

__all__ = ["Model", "layers", "metrics", "models", "tasks"]
