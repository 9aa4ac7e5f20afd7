"""On-device batch sampling: the dataset lives on the device, batches are drawn inside the step.

The order is a pure function of the seed and the step: epoch e visits the
examples in the order `permutation(fold_in(order_key, e))`, step s reads
positions [(s mod S) * B, (s mod S + 1) * B) of it, where S = N // B steps
per epoch (the last incomplete batch of each epoch is dropped, as usual).
The permutation is kept in the train state and recomputed only at epoch
boundaries (computing it costs about as much as a small model step).
"""
from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from gen_jax import parallel
from gen_jax.data.dataset import Dataset
from gen_jax.errors import ConfigError


@flax.struct.dataclass
class DeviceData:
  """A split on the device: uint8 images [N, H, W, C] and int32 labels [N] (zeros when unlabelled)."""
  images: jax.Array
  labels: jax.Array


def to_device(dataset: Dataset, mesh: Mesh, split: str = "train") -> DeviceData:
  part = getattr(dataset, split)
  labels = part.labels if part.labels is not None else np.zeros(len(part.images), np.int32)
  return parallel.put_replicated(DeviceData(images=np.asarray(part.images, np.uint8),
                                            labels=np.asarray(labels, np.int32)), mesh)


class BatchSampler:
  """Draws the global batch of step `step` from `DeviceData` inside a jitted function."""

  def __init__(self, num_examples: int, batch_size: int, binarization: str | None, mesh: Mesh | None = None):
    if batch_size > num_examples:
      raise ConfigError(f"config.data.batch_size={batch_size} is larger than the training set "
                        f"({num_examples} examples); lower the batch size")
    self.num_examples = num_examples
    self.batch_size = batch_size
    self.steps_per_epoch = num_examples // batch_size
    self.binarization = binarization
    self.mesh = mesh

  def epoch_permutation(self, order_key: jax.Array, epoch) -> jax.Array:
    return jax.random.permutation(jax.random.fold_in(order_key, epoch), self.num_examples).astype(jnp.int32)

  def initial_order(self, order_key: jax.Array) -> jax.Array:
    return self.epoch_permutation(order_key, 0)

  def sample(self, data: DeviceData, order: jax.Array, order_key: jax.Array, step, key: jax.Array):
    """Returns (batch, order): batch = {'image': float32 [B,H,W,C] in [0,1], 'label': int32 [B]}."""
    epoch = step // self.steps_per_epoch
    position = step % self.steps_per_epoch
    order = jax.lax.cond(position == 0, lambda: self.epoch_permutation(order_key, epoch), lambda: order)
    index = jax.lax.dynamic_slice_in_dim(order, position * self.batch_size, self.batch_size)
    if self.mesh is not None:
      index = jax.lax.with_sharding_constraint(index, parallel.batch_sharded(self.mesh))
    images = data.images[index]
    batch = {"image": self.to_model_input(images, key), "label": data.labels[index]}
    return batch, order

  def to_model_input(self, images_uint8: jax.Array, key: jax.Array) -> jax.Array:
    """uint8 pixels -> model input in [0, 1]; dynamic binarization draws Bernoulli(pixel / 255)."""
    x = images_uint8.astype(jnp.float32) / 255.0
    if self.binarization == "dynamic":
      return jax.random.bernoulli(key, x).astype(jnp.float32)
    if self.binarization == "fixed":
      return (x > 0.5).astype(jnp.float32)
    return x
