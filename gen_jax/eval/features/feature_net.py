"""The dataset's own feature classifier: features for Frechet distance & co., predictions for mode counting.

Inception features are meaningless on 28x28 grey digits, so on MNIST-scale data the usual offline substitute
for FID is a Frechet distance in the penultimate layer of a classifier trained on the dataset itself (TF-GAN's
"MNIST Frechet distance"). This module holds that classifier:

  FeatureCNN          the grey-data network (Flax linen, Architecture.kind "cnn"): three conv stages (conv3x3 +
                      ReLU + 2x2 average pool, widths 32-64-128), dense(feature_dim) + ReLU = the features,
                      dense(num_classes) = the logits. Works for any H x W x C (the dense layer is sized from it).
  FeatureResNet       the colour-data network (kind "resnet"): a ResNet-9-style net with batch norm; the global
                      max-pooled last stage (widths[-1] values) = the features. Batch norm runs in inference mode
                      (running statistics) whenever features or logits are computed.
  flip averaging      an optional read-out (Architecture.flip_average, the default for the colour net): features
                      and logits are the mean over the image and its horizontal mirror, the test-time flip of
                      Page's ResNet-9; the logits of the mean features are the mean logits (the head is linear,
                      no bias), so the recorded test accuracy is that of the features used.
  FeatureNet          a trained classifier loaded from disk: .features / .logits / .probs of float images
                      [N, H, W, C] in [0, 1], batched (bounded memory); .sha256 identifies the weights;
                      .place(placement) puts it on the evaluation mesh (batches split over its devices).
  load_feature_net    directory -> FeatureNet; save_feature_net writes one.

Stored format of a classifier folder (e.g. <repo>/classifiers/mnist, committed to git):
  params/             an orbax StandardCheckpointer checkpoint of the network's state: the parameter pytree for
                      "cnn"; {"params": ..., "batch_stats": ...} (weights and batch-norm running statistics) for
                      "resnet"
  classifier.json     dataset, architecture fields, num_classes, image_shape, test accuracy, train steps, seed,
                      sha256 of the parameters, the command that trained it, date

The sha256 is taken over that whole stored state (so for "resnet" it covers the batch-norm running statistics
too; one hash, no second one) and the read-out (a flip-averaged net hashes differently from the same weights read
once), in a canonical order (sorted key paths; for each leaf its path,
dtype, shape and little-endian C-order bytes), so it does not depend on the checkpoint's file layout, survives a
save/load round trip, and changes when any weight changes. Every number computed with these features should
record it (`FeatureNet.describe()`).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import pathlib
import shlex
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.errors import CheckpointError, ConfigError, GenJaxError
from gen_jax.storage.atomic import write_text_atomic
from gen_jax.eval.placement import LEFT_TO_JIT, Placement

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
CLASSIFIERS_DIR = REPO_ROOT / "classifiers"
META_FILE = "classifier.json"
PARAMS_DIR = "params"
FORMAT_VERSION = 1
# Datasets whose images are MNIST digits: they share the MNIST classifier (Stacked MNIST: one digit per channel).
DATASET_ALIASES = {"binarized_mnist": "mnist", "stacked_mnist": "mnist"}
EVAL_BATCH = 500


ARCH_KINDS = ("cnn", "resnet")
_ARCH_NAMES = {"cnn": "FeatureCNN", "resnet": "FeatureResNet"}


@dataclasses.dataclass(frozen=True)
class Architecture:
  """The fields that rebuild a feature network; stored in classifier.json.

  kind "cnn": FeatureCNN (widths = its conv stages); kind "resnet": FeatureResNet (widths = stem, stage 1, 2, 3;
  feature_dim must equal widths[-1], the pooled last stage). The "cnn" JSON has no kind field, as before, so the
  committed MNIST / Fashion-MNIST records read unchanged; likewise flip_average is written only when set."""
  widths: tuple[int, ...] = (32, 64, 128)
  feature_dim: int = 128
  num_classes: int = 10
  image_shape: tuple[int, int, int] = (28, 28, 1)
  kind: str = "cnn"
  flip_average: bool = False   # read-out: mean of the image's and its mirror's outputs (not a training setting)

  def __post_init__(self):
    if not isinstance(self.flip_average, bool):
      raise ConfigError(f"flip_average must be true or false; got {self.flip_average!r}.")
    if self.kind not in ARCH_KINDS:
      raise ConfigError(f"feature network kind {self.kind!r} is unknown. Fix: use one of {', '.join(ARCH_KINDS)}.")
    if self.kind == "resnet":
      if len(self.widths) != 4 or self.feature_dim != self.widths[-1]:
        raise ConfigError(f"a resnet feature network takes 4 widths (stem, stage 1, 2, 3) and feature_dim = the last "
                          f"width; got widths {self.widths}, feature_dim {self.feature_dim}. Fix: e.g. widths "
                          f"{RESNET_WIDTHS}, feature_dim {RESNET_WIDTHS[-1]}.")
      h, w = self.image_shape[:2]
      if h % 8 or w % 8:
        raise ConfigError(f"a resnet feature network halves the image three times; {h}x{w} is not divisible by 8. "
                          "Fix: resize the images (e.g. to 32x32) or use --arch=cnn.")

  def to_json(self) -> dict:
    d = {"name": _ARCH_NAMES[self.kind], "widths": list(self.widths), "feature_dim": self.feature_dim,
         "num_classes": self.num_classes, "image_shape": list(self.image_shape)}
    if self.flip_average:
      d["flip_average"] = True
    return d

  @classmethod
  def from_json(cls, d: dict) -> "Architecture":
    kinds = {name: kind for kind, name in _ARCH_NAMES.items()}
    if d.get("name") not in kinds:
      raise CheckpointError(f"classifier.json names architecture {d.get('name')!r}; this version of gen_jax reads "
                            f"{' or '.join(map(repr, kinds))} only. Fix: retrain with python -m "
                            "gen_jax.eval.train_feature_net.")
    return cls(widths=tuple(int(w) for w in d["widths"]), feature_dim=int(d["feature_dim"]),
               num_classes=int(d["num_classes"]), image_shape=tuple(int(s) for s in d["image_shape"]),
               kind=kinds[d["name"]], flip_average=d.get("flip_average", False))

  def module(self) -> "FeatureCNN | FeatureResNet":
    if self.kind == "resnet":
      return FeatureResNet(widths=tuple(self.widths), num_classes=self.num_classes)
    return FeatureCNN(widths=self.widths, feature_dim=self.feature_dim, num_classes=self.num_classes)


# The colour-data default (a half-width ResNet-9: about 1.6 M parameters); features = 256 values.
RESNET_WIDTHS = (32, 64, 128, 256)


def resnet_architecture(image_shape: Sequence[int], num_classes: int = 10,
                        widths: Sequence[int] = RESNET_WIDTHS) -> Architecture:
  widths = tuple(int(w) for w in widths)
  return Architecture(widths=widths, feature_dim=widths[-1], num_classes=int(num_classes),
                      image_shape=tuple(int(s) for s in image_shape), kind="resnet")


class FeatureCNN(nn.Module):
  """conv3x3-ReLU-avgpool2 per width, then dense(feature_dim)-ReLU (features) and dense(num_classes) (logits).

  Input: float images [N, H, W, C] in [0, 1]. Average pooling ('SAME', so odd sizes work) rather than max
  pooling: its gradient is a plain windowed sum, cheap on XLA:CPU.
  """
  widths: Sequence[int] = (32, 64, 128)
  feature_dim: int = 128
  num_classes: int = 10

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns (features [N, feature_dim], logits [N, num_classes])."""
    h = jnp.asarray(x, jnp.float32) * 2.0 - 1.0
    for i, width in enumerate(self.widths):
      h = nn.relu(nn.Conv(width, (3, 3), padding="SAME", name=f"conv{i}")(h))
      h = nn.avg_pool(h, (2, 2), strides=(2, 2), padding="SAME")
    h = h.reshape(h.shape[0], -1)
    features = nn.relu(nn.Dense(self.feature_dim, name="features")(h))
    logits = nn.Dense(self.num_classes, name="logits")(features)
    return features, logits


def _max_pool2(x: jax.Array) -> jax.Array:
  """2x2 max pool, stride 2, as a reshape and a max: its gradient is elementwise (no select-and-scatter)."""
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class FeatureResNet(nn.Module):
  """ResNet-9-style classifier for colour images (Page's DAWNBench net, narrower by default).

  stem conv-BN-ReLU (widths[0]); three stages of conv3x3 -> 2x2 max pool -> BN -> ReLU (widths[1..3]), stages 1
  and 3 followed by a residual block x + (conv-BN-ReLU)^2(x); global max pool = the features [N, widths[-1]];
  dense(num_classes, no bias) * 0.125 = the logits. Pooling before batch norm applies BN to a quarter of the
  values. Input: float images [N, H, W, C] in [0, 1], H and W divisible by 8. `train=True` normalises with the
  batch's statistics and updates the `batch_stats` collection; the default uses the running statistics.
  """
  widths: Sequence[int] = RESNET_WIDTHS
  num_classes: int = 10

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """Returns (features [N, widths[-1]], logits [N, num_classes])."""
    def conv_bn(h, width, name, pool=False):
      h = nn.Conv(width, (3, 3), padding="SAME", use_bias=False, name=f"{name}_conv")(h)
      if pool:
        h = _max_pool2(h)
      h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(h)
      return nn.relu(h)

    h = jnp.asarray(x, jnp.float32) * 2.0 - 1.0
    h = conv_bn(h, self.widths[0], "stem")
    for i, width in enumerate(self.widths[1:], start=1):
      h = conv_bn(h, width, f"stage{i}", pool=True)
      if i in (1, 3):
        h = h + conv_bn(conv_bn(h, width, f"res{i}a"), width, f"res{i}b")
    features = jnp.max(h, axis=(1, 2))
    logits = nn.Dense(self.num_classes, use_bias=False, name="logits")(features) * 0.125
    return features, logits


def variables_of(module: nn.Module, state: Any) -> dict:
  """The flax variables dict of a stored state (see init_params)."""
  return state if isinstance(module, FeatureResNet) else {"params": state}


def init_params(arch: Architecture, key: jax.Array) -> Any:
  """The network's stored state: the parameter pytree ("cnn"), or {"params", "batch_stats"} ("resnet")."""
  dummy = jnp.zeros((1,) + tuple(arch.image_shape), jnp.float32)
  variables = arch.module().init(key, dummy)
  if arch.kind == "resnet":
    return {"params": variables["params"], "batch_stats": variables["batch_stats"]}
  return variables["params"]


def params_sha256(params: Any, flip_average: bool = False) -> str:
  """sha256 over the parameter leaves in sorted key-path order: path, dtype, shape and little-endian bytes; a
  flip-averaged read-out adds a final tag (the same weights read two ways are two feature networks)."""
  leaves = jax.tree_util.tree_leaves_with_path(jax.device_get(params))
  digest = hashlib.sha256()
  for path, leaf in sorted(leaves, key=lambda kv: jax.tree_util.keystr(kv[0])):
    a = np.ascontiguousarray(np.asarray(leaf))
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    digest.update(jax.tree_util.keystr(path).encode())
    digest.update(f"|{a.dtype.str}|{a.shape}|".encode())
    digest.update(a.tobytes())
  if flip_average:
    digest.update(b"|readout:flip_average|")
  return digest.hexdigest()


def canonical_dataset(dataset_name: str) -> str:
  return DATASET_ALIASES.get(dataset_name, dataset_name)


# A user's own data: no shared default classifier (two image folders are two datasets); eval.feature_net names it.
OWN_DATA = ("image_folder", "npz")
RESNET_DATASETS = ("cifar10",)   # named datasets whose classifier is the residual net (the others: the grey CNN)


def default_feature_net_dir(dataset_name: str) -> pathlib.Path:
  """<repo>/classifiers/<dataset>; binarized_mnist and stacked_mnist use the MNIST classifier."""
  return CLASSIFIERS_DIR / canonical_dataset(dataset_name)


def train_command(dataset_name: str, directory: str | pathlib.Path | None = None, data_path: str = "",
                  colour: bool = False, data_dir: str = "") -> str:
  """The documented command (as the README writes it) that (re)trains the classifier of a dataset; `data_path`:
  the user's image folder / .npz when known (else a placeholder); `colour`: own colour images get the residual
  net (the grey CNN is the default for own data); `data_dir`: a named dataset's config.data.data_dir when set
  (else no flag: the command searches where train.py does, $GEN_JAX_DATA_DIR, ~/gen_jax_data, ../shared/data)."""
  name = canonical_dataset(dataset_name)
  if name in OWN_DATA:
    what = "the image folder" if name == "image_folder" else "the .npz file"
    path = shlex.quote(str(data_path)) if data_path else f"<{what}>"
    out = shlex.quote(str(directory)) if directory is not None else "<a folder for its classifier>"
    arch = " --arch=resnet" if colour else ""
    return f"python -m gen_jax.eval.train_feature_net --dataset={name} --data_path={path}{arch} --out={out}"
  cmd = f"python -m gen_jax.eval.train_feature_net --dataset={name}"
  if data_dir:
    cmd += f" --data_dir={shlex.quote(str(data_dir))}"
  if directory is not None and pathlib.Path(directory).resolve() != default_feature_net_dir(name).resolve():
    cmd += f" --out={shlex.quote(str(directory))}"
  return cmd


def train_cost(dataset_name: str) -> str:
  """How long the classifier's training takes, for messages (classifiers/README.md has the measurements)."""
  if canonical_dataset(dataset_name) in RESNET_DATASETS:
    return "about two hours on an idle 2-core CPU, resumable per epoch"
  return "minutes on a CPU"


@functools.partial(jax.jit, static_argnums=(0, 3))
def apply_net(module: nn.Module, params: Any, images: jax.Array,
              flip_average: bool = False) -> tuple[jax.Array, jax.Array]:
  """(features, logits) of float images [N, H, W, C] in [0, 1] (batch norm in inference mode); jitted once per
  module, shape and read-out.

  `params`: the stored state (init_params). flip_average: the mean of the outputs for the images and their
  horizontal mirrors (one pass over both; inference-mode batch norm keeps the halves independent)."""
  variables = variables_of(module, params)
  if not flip_average:
    return module.apply(variables, images)
  n = images.shape[0]
  both = module.apply(variables, jnp.concatenate([images, images[:, :, ::-1]], axis=0))
  return jax.tree.map(lambda a: 0.5 * (a[:n] + a[n:]), both)


class FeatureNet:
  """A trained feature network (FeatureCNN or FeatureResNet) and its record; `params` is its stored state.

  Inputs: float images [N, H, W, C] in [0, 1] (numpy or jax)."""

  def __init__(self, params: Any, arch: Architecture, meta: dict, directory: pathlib.Path | None = None,
               data_dir: str = ""):
    self.params = params
    self.arch = arch
    self.module = arch.module()
    self.meta = dict(meta)
    self.directory = directory
    self.data_dir = data_dir   # the run's config.data.data_dir, for the training command in messages
    self.dataset: str = str(meta.get("dataset", ""))
    self.test_accuracy: float | None = meta.get("test_accuracy")
    self.image_shape: tuple[int, int, int] = tuple(arch.image_shape)
    self.num_classes: int = arch.num_classes
    self.feature_dim: int = arch.feature_dim
    self.flip_average: bool = arch.flip_average
    self.sha256: str = params_sha256(params, arch.flip_average)
    self.placement: Placement = LEFT_TO_JIT

  def place(self, placement: Placement) -> "FeatureNet":
    """Replicates the weights over the evaluation mesh; later batches are split over its devices (in place)."""
    self.params = placement.replicate(self.params)
    self.placement = placement
    return self

  def _check(self, images) -> None:
    shape = tuple(np.shape(images)[1:])
    if shape != self.image_shape:
      raise GenJaxError(f"the {self.dataset or 'feature'} classifier takes images of shape {self.image_shape} "
                        f"(H, W, C); got {shape}. Fix: use the classifier of this dataset "
                        f"({train_command(self.dataset or '<dataset>', data_dir=self.data_dir)}), or feed one "
                        "channel at a time.")

  def apply(self, images, batch_size: int = EVAL_BATCH, progress: str | None = None,
            cancel=None) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, feature_dim], logits [N, K]) as numpy, computed batch by batch.

    The batch size is rounded up to a multiple of the placement's device count, so every batch splits evenly.
    ``cancel``: asked before each batch (batching.map_batches)."""
    self._check(images)
    from gen_jax.eval.batching import map_batches
    place = self.placement
    fn = lambda x: apply_net(self.module, self.params, place.batch(np.asarray(x, np.float32)),  # noqa: E731
                             self.flip_average)
    return map_batches(fn, images, batch_size=place.round_batch(batch_size), progress=progress, cancel=cancel)

  def features(self, images, batch_size: int = EVAL_BATCH, progress: str | None = None, cancel=None) -> np.ndarray:
    """Penultimate-layer activations, [N, feature_dim] float32."""
    return self.apply(images, batch_size, progress, cancel)[0]

  def logits(self, images, batch_size: int = EVAL_BATCH, progress: str | None = None, cancel=None) -> np.ndarray:
    return self.apply(images, batch_size, progress, cancel)[1]

  def probs(self, images, batch_size: int = EVAL_BATCH, progress: str | None = None) -> np.ndarray:
    return np.asarray(jax.nn.softmax(self.logits(images, batch_size, progress), axis=-1))

  def predict(self, images, batch_size: int = EVAL_BATCH, progress: str | None = None) -> np.ndarray:
    return np.argmax(self.logits(images, batch_size, progress), axis=-1).astype(np.int32)

  def describe(self) -> dict:
    """What to record next to every number computed with this classifier."""
    d = {"feature_net": str(self.directory) if self.directory else None, "feature_net_sha256": self.sha256,
         "feature_net_dataset": self.dataset, "feature_net_test_accuracy": self.test_accuracy,
         "feature_dim": self.feature_dim}
    if self.flip_average:   # written only when set: the records of single-read nets stay as they were
      d["feature_net_readout"] = "mean over the image and its horizontal mirror"
    return d


def save_feature_net(directory: str | pathlib.Path, params: Any, arch: Architecture, meta: dict) -> dict:
  """Writes params/ (orbax) and classifier.json; returns the metadata written (with sha256 and architecture)."""
  import orbax.checkpoint as ocp

  directory = pathlib.Path(directory).resolve()
  directory.mkdir(parents=True, exist_ok=True)
  params = jax.device_get(params)
  record = dict(meta, format_version=FORMAT_VERSION, architecture=arch.to_json(), num_classes=arch.num_classes,
                image_shape=list(arch.image_shape), sha256=params_sha256(params, arch.flip_average))
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(directory / PARAMS_DIR, params, force=True)
    ckptr.wait_until_finished()
  write_text_atomic(directory / META_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
  return record


def load_feature_net(directory: str | pathlib.Path, dataset: str | None = None, data_dir: str = "") -> FeatureNet:
  """Loads a classifier folder written by save_feature_net / `python -m gen_jax.eval.train_feature_net`.

  ``dataset``: if given, the classifier must have been trained on it (aliases: binarized/stacked MNIST -> mnist).
  ``data_dir``: the run's config.data.data_dir, so that a (re)training command in a message reads the same data.
  Missing folder -> GenJaxError naming the training command; unreadable, altered or mismatched -> CheckpointError.
  """
  import orbax.checkpoint as ocp

  directory = pathlib.Path(directory).expanduser().resolve()
  guess = dataset or (directory.name if directory.name in ("mnist", "fashion_mnist", "cifar10") else "<dataset>")
  meta_path = directory / META_FILE
  command = train_command(guess, directory, data_dir=data_dir)
  if not meta_path.is_file():
    what = "no such folder" if not directory.exists() else f"no {META_FILE} in it"
    raise GenJaxError(f"feature classifier not found at {directory} ({what}). Fix: train it with "
                      f"`{command}` ({train_cost(guess)}), or point "
                      "--config.eval.feature_net at an existing classifier folder.")
  retrain = f"Fix: retrain it with `{command} --overwrite`."   # the folder holds one
  try:
    meta = json.loads(meta_path.read_text())
    arch = Architecture.from_json(meta["architecture"])
  except CheckpointError:
    raise
  except Exception as e:  # noqa: BLE001 - bad JSON, missing or malformed fields
    raise CheckpointError(f"{meta_path} is unreadable or incomplete ({type(e).__name__}: {e}). {retrain}") from e
  if dataset is not None and meta.get("dataset") != canonical_dataset(dataset):
    raise CheckpointError(f"the classifier at {directory} was trained on {meta.get('dataset')!r}, not "
                          f"{canonical_dataset(dataset)!r}. Fix: set --config.eval.feature_net to the "
                          f"{canonical_dataset(dataset)} classifier, or train one with "
                          f"`{train_command(dataset, data_dir=data_dir)}`.")
  device = jax.local_devices()[0]
  sharding = jax.sharding.SingleDeviceSharding(device)
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding),
                          jax.eval_shape(lambda: init_params(arch, jax.random.key(0))))
  try:
    with ocp.StandardCheckpointer() as ckptr:
      params = ckptr.restore(directory / PARAMS_DIR, abstract)
  except Exception as e:  # noqa: BLE001 - orbax / tensorstore raise many types
    first = (str(e).strip().splitlines() or [""])[0][:300]
    raise CheckpointError(f"the classifier parameters in {directory / PARAMS_DIR} cannot be read or do not match "
                          f"the architecture in {META_FILE} ({type(e).__name__}: {first}). {retrain}") from e
  net = FeatureNet(params, arch, meta, directory, data_dir=data_dir)
  if meta.get("sha256") != net.sha256:
    raise CheckpointError(f"the classifier parameters in {directory} hash to {net.sha256}, but {META_FILE} records "
                          f"{meta.get('sha256')}: the checkpoint was altered or is incomplete. {retrain}")
  return net
