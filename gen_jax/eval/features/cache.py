"""Classifier outputs of fixed image sets, kept on disk and keyed by content.

The reference and floor images of the samples group (seeded draws) are the same for every run evaluated on a
dataset, and on a CPU passing them through the colour classifier is most of that group's cost. `cached_apply`
keys the outputs by everything a pass depends on: the classifier's sha256 (weights and read-out) and architecture,
the batch size, the devices (count, platform, kind), the jax / jaxlib versions, CACHE_VERSION (raised when the
forward code changes) and the images' own bytes; so a hit is what a new pass on this machine and code computes
(up to the run-to-run float noise some accelerators' autotuned kernels have); anything else is a miss. A file that
fails its checksum or does not load is recomputed (and said so), never used.

Location: $GEN_JAX_FEATURE_CACHE (default ~/.cache/gen_jax/features; about 5 MB per 10,000 grey images, 11 MB per
10,000 colour ones; nothing is evicted: delete the folder to reclaim it); GEN_JAX_FEATURE_CACHE=off turns it off.
Single-process runs only: the processes of a multi-host run must make the same collective calls.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pathlib
import zipfile

import jax
import numpy as np

from gen_jax.storage.atomic import write_bytes_atomic

ENV = "GEN_JAX_FEATURE_CACHE"
CACHE_VERSION = 1   # raise when apply_net / the feature networks' forward code changes
DEFAULT_DIR = "~/.cache/gen_jax/features"

log = logging.getLogger(__name__)


def cache_dir() -> pathlib.Path | None:
  """The cache folder, or None when turned off."""
  value = os.environ.get(ENV, DEFAULT_DIR)
  if value.strip().lower() in ("", "off", "0", "none"):
    return None
  return pathlib.Path(value).expanduser()


def cache_key(net, images: np.ndarray, batch_size: int) -> str:
  import jaxlib   # noqa: PLC0415
  digest = hashlib.sha256()
  devices = sorted({(d.platform, d.device_kind) for d in jax.local_devices()})
  arch = json.dumps(net.arch.to_json(), sort_keys=True) if hasattr(net, "arch") else ""
  digest.update(f"v{CACHE_VERSION}|{net.sha256}|{arch}|{batch_size}|{net.placement.describe()}|{devices}|"
                f"jax {jax.__version__}|jaxlib {jaxlib.__version__}|{images.dtype}|{images.shape}".encode())
  digest.update(np.ascontiguousarray(images).data)
  return digest.hexdigest()


def _checksum(features: np.ndarray, logits: np.ndarray) -> str:
  digest = hashlib.sha256()
  for a in (features, logits):
    digest.update(f"{a.dtype}|{a.shape}".encode())
    digest.update(np.ascontiguousarray(a).data)
  return digest.hexdigest()


def _load(path: pathlib.Path, n: int) -> tuple[np.ndarray, np.ndarray] | None:
  try:
    with np.load(path) as z:
      features, logits, checksum = z["features"], z["logits"], str(z["checksum"])
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    log.warning("feature cache %s does not load (%s); recomputing it", path, e)
    return None
  if len(features) != n or len(logits) != n or checksum != _checksum(features, logits):
    log.warning("feature cache %s fails its checksum or length; recomputing it", path)
    return None
  return features, logits


def cached_apply(net, images, batch_size: int, progress: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """`net.apply(images, batch_size, progress)` (a FeatureNet: features and logits), from the cache when these very
  images went through this very classifier before."""
  folder = cache_dir()
  if folder is None or jax.process_count() > 1 or not hasattr(net, "placement"):   # off, several hosts, a stand-in
    return net.apply(images, batch_size, progress)
  images = np.asarray(images)
  path = folder / f"{cache_key(net, images, batch_size)}.npz"
  try:
    present = path.is_file()
  except OSError as e:   # a folder this user cannot enter: a miss, and said so
    log.warning("cannot read the feature cache %s (%s); set %s=off or to a readable folder", folder, e, ENV)
    present = False
  if present:
    hit = _load(path, len(images))
    if hit is not None:
      return hit
  features, logits = (np.asarray(a) for a in net.apply(images, batch_size, progress))
  buffer = io.BytesIO()
  np.savez(buffer, features=features, logits=logits, checksum=np.array(_checksum(features, logits)))
  try:
    write_bytes_atomic(path, buffer.getvalue())
  except OSError as e:   # a read-only or full disk costs speed, not the evaluation
    log.warning("cannot write the feature cache %s (%s); set %s=off or to a writable folder", path, e, ENV)
  return features, logits
