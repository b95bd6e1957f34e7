"""Replica helpers under `tf.distribute`: the batch of every replica, and its place in the global batch.

Under `MirroredStrategy` (or `MultiWorkerMirroredStrategy`) each replica
sees its slice of the global batch. In-batch negatives gather the
candidates (ids, embeddings) of all replicas, so each query is scored
against the whole global batch, as on one device; the loss of a replica
is its rows' share of the global loss, so that the gradients Keras sums
over replicas are those of one device on the global batch.

Outside a strategy (or with one replica) every function here returns its
input: single-device code pays nothing.
"""

from __future__ import annotations

import tensorflow as tf


def _context():
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def _placed(value):
    """`value` on this replica's device. MultiWorkerMirroredStrategy gathers
    to the device a tensor names, and one made outside the replica's device
    scope (a Keras layer's) names none: "destinations can not be empty"."""
    value = tf.convert_to_tensor(value)
    if value.device:
        return value
    # The worker's devices (one replica each, in the order of its local
    # replicas); a worker of one device, as a CPU worker, has just it.
    devices = tf.distribute.get_strategy().extended.worker_devices
    if len(devices) > 1:
        devices = tf.nest.flatten(tf.distribute.get_replica_context().devices)
    with tf.device(devices[0]):
        return tf.identity(value)


def num_replicas() -> int:
    """Replicas in sync in the current replica context (1 outside one)."""
    context = _context()
    return 1 if context is None else int(context.num_replicas_in_sync)


def all_gather(value):
    """`value` [B, ...] of every replica concatenated along the batch axis, in
    replica order (the order the strategy split the global batch in); the
    gradient flows back to each replica's own rows."""
    context = _context()
    if context is None:
        return value
    return context.all_gather(_placed(value), axis=0)


def batch_offset(local_batch):
    """(the global position of this replica's first row, the global batch
    size), from every replica's batch size (the last may be smaller)."""
    context = _context()
    local_batch = tf.cast(local_batch, tf.int32)
    if context is None:
        return tf.constant(0, tf.int32), local_batch
    sizes = context.all_gather(_placed(tf.reshape(local_batch, [1])), axis=0)
    replica = context.replica_id_in_sync_group
    replica = tf.cast(replica, tf.int32) if isinstance(replica, tf.Tensor) else tf.constant(replica, tf.int32)
    return tf.reduce_sum(sizes[:replica]), tf.reduce_sum(sizes)


def global_batch_size(local_batch):
    """The sum of every replica's batch size (`local_batch` outside a strategy)."""
    return batch_offset(local_batch)[1]
