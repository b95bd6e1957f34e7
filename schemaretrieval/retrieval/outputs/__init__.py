"""The retrieval loss: how a batch's positives and negatives become one number.

* ``base``: `SampledOutput` (what every output shares), Merlin's `Prediction`,
  the logQ correction and the negative masks.
* ``contrastive``: `ContrastiveOutput` (Merlin Models' arguments, in Merlin's
  order) owns the loss options (temperature, false negatives, logQ
  correction, hard negatives, sample weights) and asks its samplers for
  negatives.
* ``bpr``: `BPROutput` scores each row's positive against its negatives with
  a pairwise loss of `schemaretrieval.retrieval.losses`.

Both give the batch's `Prediction` (logits and one-hot targets, Merlin's
form), which a model's compiled ranking metrics read.
"""

from schemaretrieval.retrieval.outputs.base import MASK_VALUE, Prediction, SampledOutput
from schemaretrieval.retrieval.outputs.bpr import BPROutput
from schemaretrieval.retrieval.outputs.contrastive import DEFAULT_DOWNSCORE_FALSE_NEGATIVES, ContrastiveOutput

__all__ = ["MASK_VALUE", "DEFAULT_DOWNSCORE_FALSE_NEGATIVES", "Prediction", "SampledOutput", "ContrastiveOutput",
           "BPROutput"]
