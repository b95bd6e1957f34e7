"""The user's training history as a query feature (YouTube-DNN style).

`UserHistory` holds, for every user id, the items that user interacted
with in the training data, and embeds a user as the mean of those items'
embeddings. In training, each row's own item is left out of its user's
history and every other item is kept with probability `keep_rate`: with
the row's item inside, the model would learn to score a user's history
items highest, which are exactly the items a held-out test never asks for;
leaving out one item and keeping all the others would let it learn which
one is missing. Outside training, the whole history is read.

The table is a non-trainable weight, so it is saved with the model and
taken into an exported SavedModel; a user id with no history (one the
training data never had, the OOV id) pools to zeros.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops
from merlin.schema import ColumnSchema

from schemaretrieval.arguments import integer, machine_memory, number
from schemaretrieval.data.validate import id_array
from schemaretrieval.rows import read_rows

#: the longest history kept per user (a random sample of longer ones):
#: memory is num_users x max_length int32.
DEFAULT_MAX_LENGTH = 256
#: in training, the share of a user's other items each row sees.
DEFAULT_KEEP_RATE = 0.5
_EMPTY = -1


def history_table(user_ids, item_ids, num_users: int, max_length: int = DEFAULT_MAX_LENGTH,
                  seed: int = 0, *, num_items: int | None = None,
                  names: tuple[str, str] = ("user_ids", "item_ids"), what: str = "history_table") -> np.ndarray:
    """A (num_users, max_length) int32 table of each user's distinct items,
    padded with -1; users with more than `max_length` keep a random sample.

    Ids must be whole numbers in [0, num_users) and [0, num_items) (any
    item id >= 0 when `num_items` is None); an error names ``what`` and the
    matching entry of `names`.

    Example:

    >>> history_table([0, 0, 2, 0], [5, 7, 5, 5], num_users=3, max_length=4)
    array([[ 5,  7, -1, -1],
           [-1, -1, -1, -1],
           [ 5, -1, -1, -1]], dtype=int32)
    """
    users = _checked_ids(user_ids, names[0], num_users, what)
    items = _checked_ids(item_ids, names[1], num_items, what)
    if users.shape != items.shape:
        raise ValueError(f"history_table: {users.size} user ids but {items.size} item ids")
    pairs = np.unique(np.stack([users, items], axis=1), axis=0) if users.size else np.zeros((0, 2), "int64")
    # A random order within each user, so that a cut at max_length samples.
    order = np.lexsort((np.random.default_rng(seed).random(len(pairs)), pairs[:, 0]))
    pairs = pairs[order]
    starts = np.searchsorted(pairs[:, 0], pairs[:, 0], side="left")
    rank = np.arange(len(pairs)) - starts
    kept = rank < max_length
    table = np.full((num_users, max_length), _EMPTY, dtype="int32")
    table[pairs[kept, 0], rank[kept]] = pairs[kept, 1]
    # Each row sorted, padding last: the same interactions give the same table.
    last = np.iinfo("int32").max
    table = np.sort(np.where(table == _EMPTY, last, table), axis=1)
    table[table == last] = _EMPTY
    return table


def _checked_ids(values, name: str, cardinality: int | None, what: str) -> np.ndarray:
    """`values` as int64 ids in [0, cardinality) (>= 0 without one), checked as every reader checks ids."""
    domain = {} if cardinality is None else {"domain": {"min": 0, "max": int(cardinality) - 1}}
    return id_array(np.asarray(values).ravel(), ColumnSchema(name, properties=domain), what)


@keras.saving.register_keras_serializable(package="schemaretrieval")
class UserHistory(keras.layers.Layer):
    """Embeds each row's user as the mean embedding of the items in the
    user's training history (see the module docstring for the training-time
    sampling).

    Args:
        num_users: rows of the table (the user-id cardinality).
        num_items: rows of the item embedding (the item-id cardinality).
        output_dim: the width of the item embeddings.
        user_id_column: the feature that holds the user id.
        item_id_column: the feature that holds each training row's item,
            left out of that row's history.
        max_length: the longest history kept per user.
        keep_rate: in training, the probability that each other item of
            the history is read.
        seed: of the training-time sampling.

    Example:

    >>> import numpy as np
    >>> layer = UserHistory(num_users=3, num_items=10, output_dim=4)
    >>> layer.set_interactions(user_ids=[0, 0, 2], item_ids=[5, 7, 5])
    >>> tuple(layer({"user_id": np.array([0, 1])}).shape)
    (2, 4)
    """

    def __init__(self, num_users: int, num_items: int, output_dim: int, user_id_column: str = "user_id",
                 item_id_column: str = "item_id", max_length: int = DEFAULT_MAX_LENGTH,
                 keep_rate: float = DEFAULT_KEEP_RATE, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        keep_rate = number(keep_rate, "UserHistory", "keep_rate", above=0, at_most=1)
        max_length = integer(max_length, "UserHistory", "max_length")
        self.num_users = integer(num_users, "UserHistory", "num_users")
        self.num_items = integer(num_items, "UserHistory", "num_items")
        self.output_dim = integer(output_dim, "UserHistory", "output_dim")
        self.user_id_column = user_id_column
        self.item_id_column = item_id_column
        self.max_length = int(max_length)
        size, memory = self.num_users * self.max_length * 4, machine_memory()
        if memory is not None and size > memory:
            raise ValueError(
                f"UserHistory: max_length (TwoTowerModel's history_max_length) {self.max_length:,} makes a "
                f"table of {self.num_users:,} users x {self.max_length:,} int32 ({size / 2**30:,.1f} GiB), more "
                f"than this machine's {memory / 2**30:,.1f} GiB of memory; a history longer than max_length "
                "keeps a random sample of it, so a few hundred is enough")
        self.keep_rate = float(keep_rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape=None):
        self.items = self.add_weight(
            shape=(self.num_users, self.max_length), dtype="int32", trainable=False, name="items",
            initializer=keras.initializers.Constant(_EMPTY),
        )
        # Not autocast: `call` reads its rows from the variable itself (below).
        self.embeddings = self.add_weight(
            shape=(self.num_items, self.output_dim), name="embeddings",
            initializer=keras.initializers.RandomUniform(-0.05, 0.05), autocast=False,
        )
        self.built = True

    def set_interactions(self, user_ids, item_ids, seed: int = 0):
        """Fills the table from training interactions (replacing it); ids
        that are not whole numbers within the id domains fail naming the
        column."""
        if not self.built:
            self.build()
        self.items.assign(history_table(user_ids, item_ids, self.num_users, self.max_length, seed,
                                        num_items=self.num_items, names=(self.user_id_column, self.item_id_column),
                                        what="UserHistory"))

    def has_interactions(self) -> bool:
        """Whether the table holds any history (set, or loaded with the weights)."""
        # Reduced where the table lives: copying a large one out at every fit would cost more.
        return self.built and bool(keras.ops.convert_to_numpy(ops.any(ops.not_equal(self.items, _EMPTY))))

    def call(self, features, training=None):
        history = ops.take(self.items, ops.cast(features[self.user_id_column], "int32"), axis=0)
        kept = ops.not_equal(history, _EMPTY)
        if training:
            if self.item_id_column in features:
                own = ops.cast(ops.reshape(features[self.item_id_column], (-1, 1)), "int32")
                kept = ops.logical_and(kept, ops.not_equal(history, own))
            draw = keras.random.uniform(ops.shape(history), seed=self.seed_generator)
            kept = ops.logical_and(kept, ops.less(draw, self.keep_rate))
        vectors = read_rows(self.embeddings, ops.maximum(history, 0))  # not ops.take: schemaretrieval.rows
        mask = ops.expand_dims(ops.cast(kept, vectors.dtype), -1)
        # Users with nothing kept pool to zeros rather than dividing by zero.
        count = ops.maximum(ops.sum(mask, axis=1), 1.0)
        return ops.cast(ops.sum(vectors * mask, axis=1) / count, self.compute_dtype)

    def compute_output_shape(self, input_shape=None):
        return (None, self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "num_users": self.num_users, "num_items": self.num_items, "output_dim": self.output_dim,
            "user_id_column": self.user_id_column, "item_id_column": self.item_id_column,
            "max_length": self.max_length, "keep_rate": self.keep_rate, "seed": self.seed,
        }
