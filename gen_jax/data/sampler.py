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
from gen_jax.data import binarize, subsets
from gen_jax.data.dataset import Dataset
from gen_jax.data.synthetic import MixtureDataset, StackedMnist
from gen_jax.errors import ConfigError


@flax.struct.dataclass
class DeviceData:
  """A split on the device: uint8 images [N, H, W, C] and int32 labels [N] (zeros when unlabelled)."""
  images: jax.Array
  labels: jax.Array


def to_device(dataset: Dataset, mesh: Mesh, split: str = "train") -> DeviceData:
  if isinstance(dataset, MixtureDataset):
    return parallel.put_replicated(DeviceData(images=np.asarray(dataset.centers, np.float32),
                                              labels=np.arange(len(dataset.centers), dtype=np.int32)), mesh)
  part = getattr(dataset, split)
  labels = part.labels if part.labels is not None else np.zeros(len(part.images), np.int32)
  return parallel.put_replicated(DeviceData(images=np.asarray(part.images, np.uint8),
                                            labels=np.asarray(labels, np.int32)), mesh)


def gather_rows(images: jax.Array, index: jax.Array) -> jax.Array:
  """images[index] for images [N, ...], gathered as whole flattened rows: XLA:CPU gathers [N, H*W*C]
  rows several times faster than [1, H, W, C] slices (NOTES.md)."""
  rows = images.reshape(images.shape[0], -1)[index]
  return rows.reshape(index.shape + images.shape[1:])


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
    images = gather_rows(data.images, index)
    batch = {"image": self.to_model_input(images, key), "label": data.labels[index]}
    return batch, order

  def visual_batch(self, dataset, n: int, key: jax.Array) -> dict:
    """A fixed batch of test images (reconstructions, interpolations, image grids): a seeded class-balanced draw
    (gen_jax/data/subsets.py, seed 0, purpose 'grid'), not the first n (an image folder is ordered by class)."""
    test = dataset.test
    idx, images, labels = subsets.subset(test, n, 0, "grid")
    labels = labels if labels is not None else np.zeros(len(idx), np.int32)
    return {"image": self.to_model_input(jnp.asarray(images), key), "label": jnp.asarray(labels, jnp.int32)}

  def to_model_input(self, images_uint8: jax.Array, key: jax.Array) -> jax.Array:
    """uint8 pixels -> model input in [0, 1]; dynamic binarization draws Bernoulli(pixel / 255) (to 7.7e-6:
    data/binarize.py)."""
    if self.binarization == "dynamic":  # Dataset guarantees uint8 pixels
      return binarize.dynamic_binarize(key, images_uint8)
    x = images_uint8.astype(jnp.float32) / 255.0
    if self.binarization == "fixed":
      return (x > 0.5).astype(jnp.float32)
    return x


class StackedMnistSampler(BatchSampler):
  """Stacked MNIST: each example stacks three independently drawn MNIST digits as R, G, B.

  The R channel follows the epoch permutation like any dataset; G and B are
  drawn uniformly with replacement from the step key (so the 1000 digit
  triples are equally likely).
  """

  def sample(self, data: DeviceData, order: jax.Array, order_key: jax.Array, step, key: jax.Array):
    batch, order = super().sample(data, order, order_key, step, key)
    k_g, k_b = jax.random.split(jax.random.fold_in(key, 1))
    idx_g = jax.random.randint(k_g, (self.batch_size,), 0, self.num_examples)
    idx_b = jax.random.randint(k_b, (self.batch_size,), 0, self.num_examples)
    if self.mesh is not None:
      idx_g = jax.lax.with_sharding_constraint(idx_g, parallel.batch_sharded(self.mesh))
      idx_b = jax.lax.with_sharding_constraint(idx_b, parallel.batch_sharded(self.mesh))
    # Each channel binarizes with its own key (R uses `key` itself; 1 drew the indices above): one key for all
    # three would give the three digits one noise pattern under dynamic binarization.
    g = self.to_model_input(gather_rows(data.images, idx_g), jax.random.fold_in(key, 2))
    b = self.to_model_input(gather_rows(data.images, idx_b), jax.random.fold_in(key, 3))
    image = jnp.concatenate([batch["image"], g, b], axis=-1)
    label = batch["label"] * 100 + data.labels[idx_g] * 10 + data.labels[idx_b]
    return {"image": image, "label": label}, order

  def visual_batch(self, dataset, n: int, key: jax.Array) -> dict:
    """n stacked test images: each channel a seeded class-balanced draw of digits (purposes 'grid_r', 'grid_g',
    'grid_b'), so the grid shows every digit in every channel, not the split's first 3n images."""
    test = dataset.test
    n = min(n, len(test.images) // 3)
    draws = [subsets.subset(test, n, 0, f"grid_{c}") for c in "rgb"]
    image = self.to_model_input(jnp.asarray(np.concatenate([d[1] for d in draws], axis=-1)), key)
    labels = (draws[0][2] * 100 + draws[1][2] * 10 + draws[2][2]).astype(np.int32)
    return {"image": image, "label": jnp.asarray(labels)}


class MixtureSampler:
  """Fresh draws from a 2-D Gaussian mixture at every step: label = component index."""

  def __init__(self, dataset: MixtureDataset, batch_size: int, mesh: Mesh | None = None):
    self.batch_size = batch_size
    self.num_examples = 1          # nothing to permute
    self.steps_per_epoch = 1
    self.std = float(dataset.std)
    self.mesh = mesh

  def initial_order(self, order_key: jax.Array) -> jax.Array:
    return jnp.zeros((1,), jnp.int32)

  def draw(self, centers: jax.Array, key: jax.Array, n: int) -> dict:
    k_comp, k_noise = jax.random.split(key)
    comp = jax.random.randint(k_comp, (n,), 0, centers.shape[0])
    if self.mesh is not None:
      comp = jax.lax.with_sharding_constraint(comp, parallel.batch_sharded(self.mesh))
    x = centers[comp] + self.std * jax.random.normal(k_noise, (n, centers.shape[1]))
    return {"image": x, "label": comp.astype(jnp.int32)}

  def sample(self, data: DeviceData, order: jax.Array, order_key: jax.Array, step, key: jax.Array):
    return self.draw(data.images, key, self.batch_size), order

  def visual_batch(self, dataset: MixtureDataset, n: int, key: jax.Array) -> dict:
    return self.draw(jnp.asarray(dataset.centers), key, n)


def make_sampler(dataset, batch_size: int, mesh: Mesh | None = None):
  """The sampler that fits the dataset's kind."""
  if isinstance(dataset, MixtureDataset):
    return MixtureSampler(dataset, batch_size, mesh)
  cls = StackedMnistSampler if isinstance(dataset, StackedMnist) else BatchSampler
  return cls(len(dataset.train.images), batch_size, dataset.binarization, mesh)
