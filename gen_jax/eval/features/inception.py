"""Standard FID features: a Flax port of pytorch-fid's InceptionV3, up to the 2048-d pool3 features.

What: the network of ``pytorch_fid.inception.fid_inception_v3`` -- torchvision's InceptionV3 with the FID patches
(``FIDInceptionA`` / ``FIDInceptionC`` / ``FIDInceptionE_1`` average-pool with ``count_include_pad=False``, and
``FIDInceptionE_2`` max-pools in its pool branch, as TensorFlow's 2015-12-05 graph does) -- loaded from the very
file pytorch-fid uses, ``pt_inception-2015-12-05-6726825d.pth``, read without PyTorch (``torch_weights``).
Why: FID numbers are only comparable to published ones when the feature network, its weights and the resize are
the standard ones; the weights' sha256 is recorded in ``InceptionFeatures.protocol``.

Preprocessing follows ``pytorch_fid.inception.InceptionV3.forward``: images [N, H, W, C] in [0, 1] (uint8 is
divided by 255; C=1 is repeated to 3 channels), resized to 299x299 with bilinear interpolation on half-pixel
centres -- torch's ``F.interpolate(mode='bilinear', align_corners=False)`` -- then scaled to [-1, 1].
``jax.image.resize`` is called with ``antialias=False``: for upsampling (28 -> 299) antialiasing changes nothing,
but for downsampling (e.g. 512 -> 299) jax's default ``antialias=True`` widens the kernel while torch (by default)
does not, so it is switched off to agree with pytorch-fid in both directions.

Layout: NHWC; PyTorch OIHW kernels become HWIO. Each BasicConv2d (conv without bias + BatchNorm(eps=1e-3) with
running statistics + ReLU) is folded into one biased conv + ReLU: kernel * gamma / sqrt(var + eps) and
bias = beta - mean * gamma / sqrt(var + eps). Flax module names are the torch names, so the mapping from a
state_dict name to the Flax tree is explicit: ``<path>.conv.weight`` and ``<path>.bn.{weight,bias,running_mean,
running_var}`` -> ``params[<path split on '.'>]['conv']{'kernel','bias'}``; ``fc.*`` (the 1008-way classifier)
and ``*.num_batches_tracked`` are ignored.

Convolutions use ``Precision.HIGHEST`` (no TF32 on GPUs) so that features do not depend on the accelerator.
``resize_to`` may be lowered for tests (75 is the smallest size InceptionV3 accepts); FID uses 299.
"""
from __future__ import annotations

import functools
import hashlib
import os
import pathlib
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.errors import CheckpointError, GenJaxError
from gen_jax.eval import batching
from gen_jax.eval.features import torch_weights

FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")
FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_FILENAME = FID_WEIGHTS_FILENAME  # short alias
# torch.hub's convention: the hex digits in the file name are the leading digits of the file's sha256.
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
ENV_VAR = "GEN_JAX_INCEPTION_WEIGHTS"
CONFIG_KEY = "eval.inception_weights"
FEATURE_DIM = 2048
FID_SIZE = 299
MIN_SIZE = 75
BN_EPS = 1e-3
_BN_FIELDS = ("weight", "bias", "running_mean", "running_var")


class InceptionWeightsMissing(GenJaxError, FileNotFoundError):
  """pytorch-fid's InceptionV3 weights file was not found where the user pointed (or nowhere was pointed)."""


# ----------------------------------------------------------------------------------------------- the network


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class BasicConv2d(nn.Module):
  """torchvision's BasicConv2d with its BatchNorm folded into the conv: conv(+bias) then ReLU.

  ``kernel`` and ``padding`` are (height, width) as in torch's ``kernel_size`` / ``padding`` (zero padding).
  """
  features: int
  kernel: int | Sequence[int]
  stride: int = 1
  padding: int | Sequence[int] = 0
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ph, pw = _pair(self.padding)
    x = nn.Conv(self.features, _pair(self.kernel), strides=(self.stride, self.stride),
                padding=((ph, ph), (pw, pw)), use_bias=True, precision=self.precision, name="conv")(x)
    return nn.relu(x)


def _avg_pool_3x3_same(x: jax.Array) -> jax.Array:
  """F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False): padded zeros are not averaged in."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3(x: jax.Array, stride: int, padding: int) -> jax.Array:
  return nn.max_pool(x, (3, 3), strides=(stride, stride), padding=((padding, padding), (padding, padding)))


class FIDInceptionA(nn.Module):
  """Mixed_5b/5c/5d (35x35 at 299): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool(no pad count)-1x1."""
  pool_features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv2d(64, 1, name="branch1x1")(x)
    b5 = BasicConv2d(48, 1, name="branch5x5_1")(x)
    b5 = BasicConv2d(64, 5, padding=2, name="branch5x5_2")(b5)
    b3 = BasicConv2d(64, 1, name="branch3x3dbl_1")(x)
    b3 = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(b3)
    b3 = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_3")(b3)
    bp = BasicConv2d(self.pool_features, 1, name="branch_pool")(_avg_pool_3x3_same(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a (35 -> 17): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv2d(384, 3, stride=2, name="branch3x3")(x)
    bd = BasicConv2d(64, 1, name="branch3x3dbl_1")(x)
    bd = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(bd)
    bd = BasicConv2d(96, 3, stride=2, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3(x, 2, 0)], axis=-1)


class FIDInceptionC(nn.Module):
  """Mixed_6b..6e (17x17): 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool(no pad count)-1x1."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c7 = self.channels_7x7
    b1 = BasicConv2d(192, 1, name="branch1x1")(x)
    b7 = BasicConv2d(c7, 1, name="branch7x7_1")(x)
    b7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv2d(c7, 1, name="branch7x7dbl_1")(x)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv2d(192, 1, name="branch_pool")(_avg_pool_3x3_same(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a (17 -> 8): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv2d(192, 1, name="branch3x3_1")(x)
    b3 = BasicConv2d(320, 3, stride=2, name="branch3x3_2")(b3)
    b7 = BasicConv2d(192, 1, name="branch7x7x3_1")(x)
    b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv2d(192, 3, stride=2, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3(x, 2, 0)], axis=-1)


class FIDInceptionE(nn.Module):
  """Mixed_7b (``pool='avg'``, FIDInceptionE_1) and Mixed_7c (``pool='max'``, FIDInceptionE_2), 8x8."""
  pool: str = "avg"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv2d(320, 1, name="branch1x1")(x)
    b3 = BasicConv2d(384, 1, name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], axis=-1)
    bd = BasicConv2d(448, 1, name="branch3x3dbl_1")(x)
    bd = BasicConv2d(384, 3, padding=1, name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], axis=-1)
    if self.pool == "avg":
      pooled = _avg_pool_3x3_same(x)
    elif self.pool == "max":  # FIDInceptionE_2: the 2015-12-05 graph max-pools here
      pooled = _max_pool_3x3(x, 1, 1)
    else:
      raise ValueError(f"pool must be 'avg' or 'max', got {self.pool!r}")
    bp = BasicConv2d(192, 1, name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """Inputs already preprocessed ([N, H, W, 3] in [-1, 1], H, W >= 75) -> pool3 features [N, 2048]."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = BasicConv2d(32, 3, stride=2, name="Conv2d_1a_3x3")(x)
    x = BasicConv2d(32, 3, name="Conv2d_2a_3x3")(x)
    x = BasicConv2d(64, 3, padding=1, name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3(x, 2, 0)
    x = BasicConv2d(80, 1, name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, 3, name="Conv2d_4a_3x3")(x)
    x = _max_pool_3x3(x, 2, 0)
    x = FIDInceptionA(32, name="Mixed_5b")(x)
    x = FIDInceptionA(64, name="Mixed_5c")(x)
    x = FIDInceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    x = FIDInceptionC(128, name="Mixed_6b")(x)
    x = FIDInceptionC(160, name="Mixed_6c")(x)
    x = FIDInceptionC(160, name="Mixed_6d")(x)
    x = FIDInceptionC(192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = FIDInceptionE("avg", name="Mixed_7b")(x)
    x = FIDInceptionE("max", name="Mixed_7c")(x)
    return jnp.mean(x, axis=(1, 2))  # AdaptiveAvgPool2d((1, 1)) + flatten


def preprocess(images: jax.Array, size: int = FID_SIZE) -> jax.Array:
  """[N, H, W, 1 or 3] in [0, 1] (or uint8) -> [N, size, size, 3] in [-1, 1], as pytorch-fid feeds Inception."""
  x = images.astype(jnp.float32)
  if images.dtype == jnp.uint8:
    x = x / 255.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  if x.shape[1:3] != (size, size):
    # Half-pixel centres, no antialiasing: torch F.interpolate(bilinear, align_corners=False); see module doc.
    x = jax.image.resize(x, (x.shape[0], size, size, 3), method="bilinear", antialias=False)
  return 2.0 * x - 1.0


@functools.partial(jax.jit, static_argnums=(2,))
def _pool3(params: Any, images: jax.Array, size: int) -> jax.Array:
  return FIDInceptionV3().apply({"params": params}, preprocess(images, size))


# ----------------------------------------------------------------------------------------------- state_dict mapping


@functools.lru_cache(maxsize=None)
def _param_shapes(size: int) -> Any:
  """The Flax params tree as ShapeDtypeStructs (traced, not compiled or allocated)."""
  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  return jax.eval_shape(lambda k, v: FIDInceptionV3().init(k, v), jax.random.key(0), x)["params"]


def basic_conv_paths(shapes: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
  """Paths (tuples of module names) of every BasicConv2d in a params tree, in tree order."""
  paths = []
  for name, child in shapes.items():
    if name == "conv" and isinstance(child, Mapping) and "kernel" in child:
      paths.append(prefix)
    elif isinstance(child, Mapping):
      paths.extend(basic_conv_paths(child, prefix + (name,)))
  return paths


def expected_state_dict_shapes(shapes: Mapping[str, Any] | None = None) -> dict[str, tuple[int, ...]]:
  """{torch state_dict name: shape} the port needs (``fc.*`` and ``num_batches_tracked`` excluded).

  Derived from the Flax module's own parameter shapes (``shapes``: a params tree; default the full network).
  """
  shapes = _param_shapes(MIN_SIZE) if shapes is None else shapes
  out: dict[str, tuple[int, ...]] = {}
  for path in basic_conv_paths(shapes):
    node = shapes
    for name in path:
      node = node[name]
    kh, kw, cin, cout = node["conv"]["kernel"].shape
    torch_name = ".".join(path)
    out[f"{torch_name}.conv.weight"] = (cout, cin, kh, kw)
    for field in _BN_FIELDS:
      out[f"{torch_name}.bn.{field}"] = (cout,)
  return out


def _ignored(name: str) -> bool:
  return name.startswith("fc.") or name.endswith(".num_batches_tracked")


def convert_state_dict(state_dict: Mapping[str, np.ndarray], shapes: Mapping[str, Any] | None = None,
                       source: str = "the state_dict") -> dict:
  """pytorch-fid's state_dict -> the Flax params tree of ``FIDInceptionV3`` (BatchNorm folded, HWIO kernels).

  ``shapes``: the params tree to fill (default: the full network); passing a sub-module's tree converts a block
  whose torch names are relative to it. A missing tensor, a wrongly shaped one, or an unexpected name (a
  different network, e.g. torchvision's Inception with AuxLogits) is a CheckpointError naming the tensor.
  """
  shapes = _param_shapes(MIN_SIZE) if shapes is None else shapes
  expected = expected_state_dict_shapes(shapes)
  missing = [k for k in expected if k not in state_dict]
  if missing:
    raise CheckpointError(f"{source} lacks {len(missing)} tensor(s) the FID Inception needs, first {missing[0]!r} "
                          f"(shape {expected[missing[0]]}); is it pytorch-fid's {FID_WEIGHTS_FILENAME}? "
                          f"Download it from {FID_WEIGHTS_URL}")
  for name, shape in expected.items():
    got = tuple(np.shape(state_dict[name]))
    if got != shape:
      raise CheckpointError(f"{source}: tensor {name!r} has shape {got}, the FID Inception expects {shape}; "
                            f"use pytorch-fid's {FID_WEIGHTS_FILENAME} ({FID_WEIGHTS_URL})")
  unexpected = sorted(k for k in state_dict if k not in expected and not _ignored(k))
  if unexpected:
    raise CheckpointError(f"{source} has {len(unexpected)} tensor(s) the FID Inception does not use, first "
                          f"{unexpected[0]!r}: a different network (torchvision's InceptionV3?); use pytorch-fid's "
                          f"{FID_WEIGHTS_FILENAME} ({FID_WEIGHTS_URL})")
  params: dict = {}
  for path in basic_conv_paths(shapes):
    torch_name = ".".join(path)
    kernel, bias = fold_batch_norm(state_dict[f"{torch_name}.conv.weight"],
                                   *(state_dict[f"{torch_name}.bn.{f}"] for f in _BN_FIELDS))
    node = params
    for name in path:
      node = node.setdefault(name, {})
    node["conv"] = {"kernel": kernel, "bias": bias}
  return params


def fold_batch_norm(weight: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, var: np.ndarray,
                    eps: float = BN_EPS) -> tuple[np.ndarray, np.ndarray]:
  """OIHW conv weight + BatchNorm statistics -> (HWIO kernel, bias) of the equivalent biased conv (float32)."""
  scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
  kernel = np.transpose(np.asarray(weight, np.float64), (2, 3, 1, 0)) * scale
  bias = np.asarray(beta, np.float64) - np.asarray(mean, np.float64) * scale
  return kernel.astype(np.float32), bias.astype(np.float32)


# ----------------------------------------------------------------------------------------------- finding the file


def _candidates(config_value: str | os.PathLike | None) -> list[tuple[str, pathlib.Path]]:
  """Where to look, in order of precedence: (how it was named, path). Only the first named source is used."""
  if config_value:
    return [(f"config {CONFIG_KEY}", pathlib.Path(config_value).expanduser())]
  if os.environ.get(ENV_VAR):
    return [(f"${ENV_VAR}", pathlib.Path(os.environ[ENV_VAR]).expanduser())]
  torch_home = pathlib.Path(os.environ.get("TORCH_HOME") or
                            pathlib.Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "torch").expanduser()
  return [("pytorch-fid's download cache", torch_home / "hub" / "checkpoints" / FID_WEIGHTS_FILENAME)]


def _as_file(path: pathlib.Path) -> pathlib.Path:
  return path / FID_WEIGHTS_FILENAME if path.is_dir() else path


def resolve_weights_path(config_value: str | os.PathLike | None = None) -> pathlib.Path | None:
  """The weights file named by ``config.eval.inception_weights`` (if set), else by $GEN_JAX_INCEPTION_WEIGHTS
  (if set), else pytorch-fid's own download cache ($TORCH_HOME/hub/checkpoints); None if that file does not exist.

  A directory stands for the file ``pt_inception-2015-12-05-6726825d.pth`` inside it.
  """
  for _, path in _candidates(config_value):
    path = _as_file(path)
    if path.is_file():
      return path
  return None


def missing_weights_message(config_value: str | os.PathLike | None = None) -> str:
  looked = "; ".join(f"{how}: {_as_file(path)}" for how, path in _candidates(config_value))
  return (f"pytorch-fid's InceptionV3 weights were not found (looked at {looked}). Download {FID_WEIGHTS_URL} "
          f"and set --config.{CONFIG_KEY}=/path/to/{FID_WEIGHTS_FILENAME} or the environment variable {ENV_VAR}. "
          "gen_jax does not download it itself; without it, standard (Inception) FID is unavailable.")


def file_sha256(path: str | os.PathLike) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


# ----------------------------------------------------------------------------------------------- the feature net


class InceptionFeatures:
  """pool3 features of pytorch-fid's InceptionV3: ``model(images) -> [N, 2048]`` (jitted, compiled per shape).

  ``features(images, batch_size)`` does the same over any N with bounded memory (one compile: the last batch is
  padded). ``protocol`` describes the network for reports; ``sha256`` is the weights file's hash.
  """

  def __init__(self, params: Any, *, sha256: str, path: pathlib.Path | None = None, resize_to: int = FID_SIZE):
    if int(resize_to) < MIN_SIZE:
      raise ValueError(f"resize_to must be >= {MIN_SIZE} (InceptionV3's smallest input), got {resize_to}")
    self.params = jax.device_put(params)
    self.sha256, self.path, self.resize_to = sha256, path, int(resize_to)

  @property
  def official(self) -> bool:
    """Whether the weights hash as pytorch-fid's published file does."""
    return self.sha256.startswith(FID_WEIGHTS_SHA256_PREFIX)

  @property
  def protocol(self) -> dict:
    return {"feature_net": "pytorch-fid InceptionV3 pool3 (2048-d)",
            "weights": self.path.name if self.path else None, "weights_sha256": self.sha256,
            "official_weights": self.official, "resize": f"bilinear to {self.resize_to}x{self.resize_to}, "
            "half-pixel centres, no antialias (torch F.interpolate align_corners=False)"}

  def __call__(self, images: Any) -> jax.Array:
    images = jnp.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"InceptionFeatures needs images [N, H, W, 1 or 3] in [0, 1], got shape {images.shape}; "
                     "give grayscale or RGB images, channels last")
    return _pool3(self.params, images, self.resize_to)

  def features(self, images: Any, batch_size: int = 50, progress: str | None = None, cancel=None) -> np.ndarray:
    """[N, 2048] float32 numpy features of ``images`` [N, H, W, 1 or 3], ``batch_size`` images at a time
    (``cancel``: asked before each batch, batching.map_batches)."""
    return batching.map_batches(self, images, batch_size=batch_size, progress=progress, cancel=cancel)


def load_fid_inception(path: str | os.PathLike | None = None, *, resize_to: int = FID_SIZE) -> InceptionFeatures:
  """pytorch-fid's InceptionV3 from its weights file (see ``resolve_weights_path`` for where ``path``/None look).

  Raises InceptionWeightsMissing (with the download URL and the config key / env var to set) when there is no
  file, and CheckpointError when the file is not that network's weights.
  """
  resolved = resolve_weights_path(path)
  if resolved is None:
    raise InceptionWeightsMissing(missing_weights_message(path))
  sha256 = file_sha256(resolved)
  if resolved.name == FID_WEIGHTS_FILENAME and not sha256.startswith(FID_WEIGHTS_SHA256_PREFIX):
    raise CheckpointError(f"{resolved} has sha256 {sha256}, but pytorch-fid's file starts with "
                          f"{FID_WEIGHTS_SHA256_PREFIX}: the download is corrupt or truncated; fetch it again from "
                          f"{FID_WEIGHTS_URL}")
  params = convert_state_dict(torch_weights.load_state_dict(resolved), source=str(resolved))
  return InceptionFeatures(params, sha256=sha256, path=resolved, resize_to=resize_to)
