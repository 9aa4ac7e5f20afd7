"""Datasets as in-memory uint8 arrays: MNIST-like via project TFDS builders, or a user's own images."""
from gen_jax.data.dataset import ArraySplit, Dataset
from gen_jax.data.registry import DATASET_NAMES, load_dataset

__all__ = ["ArraySplit", "Dataset", "DATASET_NAMES", "load_dataset"]
