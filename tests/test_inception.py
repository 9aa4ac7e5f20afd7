"""pytorch-fid's InceptionV3 in Flax: the torch-free .pth reader, the architecture, the loading path.

Known answers: byte-exact round trips (and torch.save files when torch is importable); the state_dict table of
torchvision's InceptionV3 with pytorch-fid's patches written out here from their constructors; torchvision's
published parameter count; a float64 numpy re-implementation of pytorch-fid's forward (unfolded BatchNorm, OIHW
weights, torch names, torch's bilinear resize formula) that the Flax port must match on random weights.
The full network is compiled once for this module, at resize_to=75 with a batch of 2.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import zipfile

import jax
import numpy as np
import pytest

from gen_jax.errors import CheckpointError
from gen_jax.eval.features import inception
from gen_jax.eval.features import torch_weights
from gen_jax.eval.features.inception import InceptionWeightsMissing

SIZE = inception.MIN_SIZE


# ----------------------------------------------------------------------------------------------- torch_weights


def _arrays() -> dict[str, np.ndarray]:
  base = np.arange(40, dtype=np.float32) * 0.5 - 3.0
  return {
      "transposed": base[:24].reshape(4, 6).T,        # non-contiguous: strides (1, 6)
      "offset_strided": base[5:35:3],                 # storage offset 5, stride 3, same storage as above
      "contiguous": np.random.default_rng(0).normal(size=(2, 3, 4)),        # float64
      "half": np.array([[1.5, -2.25], [65504.0, 1e-3]], np.float16),
      "long": np.array([-(2 ** 40), 0, 7], np.int64),
      "scalar": np.array(12, np.int64),                # like num_batches_tracked
      "empty": np.zeros((0, 3), np.float32),
  }


@pytest.mark.parametrize("fmt,location", [("zip", "cpu"), ("legacy", "cpu"), ("legacy", "cuda:0")])
def test_state_dict_round_trip(tmp_path, fmt, location):
  arrays = _arrays()
  path = tmp_path / f"w_{fmt}.pth"
  torch_weights.save_state_dict(path, arrays, format=fmt, location=location)
  assert zipfile.is_zipfile(path) == (fmt == "zip")
  assert (b"torch.cuda\nFloatStorage" in path.read_bytes()) == (location != "cpu")
  back = torch_weights.load_state_dict(path)
  assert list(back) == list(arrays)
  for name, value in arrays.items():
    assert back[name].dtype == value.dtype and back[name].shape == value.shape, name
    np.testing.assert_array_equal(back[name], value, err_msg=name)
  if fmt == "zip":  # the two views of `base` were written as ONE storage (offset and strides kept, not copied)
    records = [n for n in zipfile.ZipFile(path).namelist() if "/data/" in n]
    assert len(records) == len(arrays) - 1


def _evil_pickle() -> bytes:
  class Evil:
    def __reduce__(self):
      return (os.system, ("touch pwned",))
  return pickle.dumps({"w": Evil()}, protocol=2)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_arbitrary_global_is_refused(tmp_path, monkeypatch, fmt):
  monkeypatch.chdir(tmp_path)
  path = tmp_path / "evil.pth"
  if fmt == "zip":
    with zipfile.ZipFile(path, "w") as z:
      z.writestr("evil/data.pkl", _evil_pickle())
  else:
    with open(path, "wb") as f:
      for header in (torch_weights.MAGIC_NUMBER, torch_weights.PROTOCOL_VERSION, {"little_endian": True}):
        pickle.dump(header, f, protocol=2)
      f.write(_evil_pickle())
      pickle.dump([], f, protocol=2)
  with pytest.raises(CheckpointError, match=r"system.*refusing"):
    torch_weights.load_state_dict(path)
  assert not (tmp_path / "pwned").exists()


def test_truncated_and_foreign_files(tmp_path):
  path = tmp_path / "w.pth"
  torch_weights.save_state_dict(path, {"w": np.ones((100,), np.float32)}, format="legacy")
  data = path.read_bytes()
  path.write_bytes(data[:-10])
  with pytest.raises(CheckpointError, match="truncated"):
    torch_weights.load_state_dict(path)
  path.write_bytes(b"not a pickle at all")
  with pytest.raises(CheckpointError, match="not a torch.save|neither"):
    torch_weights.load_state_dict(path)
  with pytest.raises(CheckpointError, match="no PyTorch weights file"):
    torch_weights.load_state_dict(tmp_path / "absent.pth")


def test_files_written_by_torch_load_identically(tmp_path):
  torch = pytest.importorskip("torch")
  base = torch.arange(40, dtype=torch.float32) * 0.5 - 3.0
  state = {"transposed": base[:24].reshape(4, 6).T, "offset_strided": base[5:35:3],
           "half": torch.tensor([1.5, -2.25], dtype=torch.float16), "long": torch.tensor([-(2 ** 40), 7]),
           "double": torch.randn(2, 3, dtype=torch.float64)}
  conv_bn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))  # a real state_dict (_metadata)
  state.update({f"net.{k}": v for k, v in conv_bn.state_dict().items()})
  for zip_format in (True, False):
    path = tmp_path / f"t{int(zip_format)}.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    back = torch_weights.load_state_dict(path)
    assert set(back) == set(state)
    for name, tensor in state.items():
      np.testing.assert_array_equal(back[name], tensor.numpy(), err_msg=name)
      assert back[name].dtype == tensor.numpy().dtype
    # and torch reads what we write, views included
    ours = tmp_path / f"ours{int(zip_format)}.pth"
    torch_weights.save_state_dict(ours, _arrays(), format="zip" if zip_format else "legacy")
    loaded = torch.load(ours, weights_only=True)
    for name, value in _arrays().items():
      np.testing.assert_array_equal(loaded[name].numpy(), value, err_msg=name)


# ----------------------------------------------------------------------------------------------- architecture


def _reference_table() -> dict[str, tuple[int, ...]]:
  """pytorch-fid's fid_inception_v3() state_dict (minus fc.* and num_batches_tracked), from the constructors of
  torchvision's Inception3 / InceptionA-E (the FID blocks only change forward(), not the parameters)."""
  convs: list[tuple[str, int, int, tuple[int, int]]] = []  # (name, in, out, (kh, kw))

  def add(name, cin, cout, k):
    convs.append((name, cin, cout, (k, k) if isinstance(k, int) else k))

  add("Conv2d_1a_3x3", 3, 32, 3); add("Conv2d_2a_3x3", 32, 32, 3); add("Conv2d_2b_3x3", 32, 64, 3)  # noqa: E702
  add("Conv2d_3b_1x1", 64, 80, 1); add("Conv2d_4a_3x3", 80, 192, 3)  # noqa: E702
  for name, cin, pool in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):   # InceptionA
    for sub, i, o, k in (("branch1x1", cin, 64, 1), ("branch5x5_1", cin, 48, 1), ("branch5x5_2", 48, 64, 5),
                         ("branch3x3dbl_1", cin, 64, 1), ("branch3x3dbl_2", 64, 96, 3),
                         ("branch3x3dbl_3", 96, 96, 3), ("branch_pool", cin, pool, 1)):
      add(f"{name}.{sub}", i, o, k)
  for sub, i, o, k in (("branch3x3", 288, 384, 3), ("branch3x3dbl_1", 288, 64, 1), ("branch3x3dbl_2", 64, 96, 3),
                       ("branch3x3dbl_3", 96, 96, 3)):                                              # InceptionB
    add(f"Mixed_6a.{sub}", i, o, k)
  for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):     # InceptionC
    for sub, i, o, k in (("branch1x1", 768, 192, 1), ("branch7x7_1", 768, c7, 1), ("branch7x7_2", c7, c7, (1, 7)),
                         ("branch7x7_3", c7, 192, (7, 1)), ("branch7x7dbl_1", 768, c7, 1),
                         ("branch7x7dbl_2", c7, c7, (7, 1)), ("branch7x7dbl_3", c7, c7, (1, 7)),
                         ("branch7x7dbl_4", c7, c7, (7, 1)), ("branch7x7dbl_5", c7, 192, (1, 7)),
                         ("branch_pool", 768, 192, 1)):
      add(f"{name}.{sub}", i, o, k)
  for sub, i, o, k in (("branch3x3_1", 768, 192, 1), ("branch3x3_2", 192, 320, 3), ("branch7x7x3_1", 768, 192, 1),
                       ("branch7x7x3_2", 192, 192, (1, 7)), ("branch7x7x3_3", 192, 192, (7, 1)),
                       ("branch7x7x3_4", 192, 192, 3)):                                             # InceptionD
    add(f"Mixed_7a.{sub}", i, o, k)
  for name, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):                                          # InceptionE
    for sub, i, o, k in (("branch1x1", cin, 320, 1), ("branch3x3_1", cin, 384, 1), ("branch3x3_2a", 384, 384, (1, 3)),
                         ("branch3x3_2b", 384, 384, (3, 1)), ("branch3x3dbl_1", cin, 448, 1),
                         ("branch3x3dbl_2", 448, 384, 3), ("branch3x3dbl_3a", 384, 384, (1, 3)),
                         ("branch3x3dbl_3b", 384, 384, (3, 1)), ("branch_pool", cin, 192, 1)):
      add(f"{name}.{sub}", i, o, k)
  table = {}
  for name, cin, cout, (kh, kw) in convs:
    table[f"{name}.conv.weight"] = (cout, cin, kh, kw)
    for field in ("weight", "bias", "running_mean", "running_var"):
      table[f"{name}.bn.{field}"] = (cout,)
  return table


def test_state_dict_table_matches_pytorch_fid():
  expected = inception.expected_state_dict_shapes()
  reference = _reference_table()
  assert set(expected) == set(reference)
  assert {k: expected[k] for k in reference} == reference
  assert len(reference) == 94 * 5  # 94 BasicConv2d, each conv.weight + 4 BatchNorm tensors


def test_parameter_count_matches_published():
  # torchvision documents Inception_V3_Weights.IMAGENET1K_V1 num_params = 27,161,264 (1000 classes, with
  # AuxLogits). Remove fc (2048*1000 + 1000) and AuxLogits (conv0 768->128 1x1 + BN affine, conv1 128->768 5x5 +
  # BN affine, fc 768*1000 + 1000): what remains is the pool3 feature extractor's trainable parameters.
  aux = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)
  trainable = 27_161_264 - (2048 * 1000 + 1000) - aux
  assert trainable == 21_785_568
  table = inception.expected_state_dict_shapes()
  counted = sum(int(np.prod(s)) for k, s in table.items() if not k.endswith(("running_mean", "running_var")))
  assert counted == trainable
  # The Flax port holds the folded network: conv kernels + one bias per output channel.
  flax_count = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(inception._param_shapes(SIZE)))
  channels = sum(s[0] for k, s in table.items() if k.endswith(".bn.bias"))
  assert flax_count == trainable - channels


# ----------------------------------------------------------------------------------------------- numpy reference


def _conv_bn_relu(x, sd, name, stride=1, padding=0):
  """pytorch-fid's BasicConv2d in float64 numpy on NHWC input with torch-layout (OIHW) weights."""
  w = sd[f"{name}.conv.weight"].astype(np.float64)
  ph, pw = (padding, padding) if isinstance(padding, int) else padding
  x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
  windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(1, 2))[:, ::stride, ::stride]
  y = np.tensordot(windows, w, axes=([3, 4, 5], [1, 2, 3]))                     # [N, Ho, Wo, O]
  bn = {f: sd[f"{name}.bn.{f}"].astype(np.float64) for f in ("weight", "bias", "running_mean", "running_var")}
  y = (y - bn["running_mean"]) / np.sqrt(bn["running_var"] + 1e-3) * bn["weight"] + bn["bias"]
  return np.maximum(y, 0.0)


def _pool(x, kind, stride, padding):
  pad_value = -np.inf if kind == "max" else 0.0
  xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), constant_values=pad_value)
  win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))[:, ::stride, ::stride]
  if kind == "max":
    return win.max(axis=(-2, -1))
  ones = np.pad(np.ones(x.shape[1:3]), padding)                       # count_include_pad=False: real pixels only
  counts = np.lib.stride_tricks.sliding_window_view(ones, (3, 3))[::stride, ::stride].sum(axis=(-2, -1))
  return win.sum(axis=(-2, -1)) / counts[None, :, :, None]


def _block(x, sd, kind, p=""):
  c = lambda name, inp, **kw: _conv_bn_relu(inp, sd, p + name, **kw)  # noqa: E731
  if kind == "A":
    return np.concatenate([c("branch1x1", x), c("branch5x5_2", c("branch5x5_1", x), padding=2),
                           c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x), padding=1), padding=1),
                           c("branch_pool", _pool(x, "avg", 1, 1))], -1)
  if kind == "B":
    return np.concatenate([c("branch3x3", x, stride=2),
                           c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x), padding=1), stride=2),
                           _pool(x, "max", 2, 0)], -1)
  if kind == "C":
    b7 = c("branch7x7_3", c("branch7x7_2", c("branch7x7_1", x), padding=(0, 3)), padding=(3, 0))
    bd = c("branch7x7dbl_1", x)
    for i, pad in ((2, (3, 0)), (3, (0, 3)), (4, (3, 0)), (5, (0, 3))):
      bd = c(f"branch7x7dbl_{i}", bd, padding=pad)
    return np.concatenate([c("branch1x1", x), b7, bd, c("branch_pool", _pool(x, "avg", 1, 1))], -1)
  if kind == "D":
    b7 = c("branch7x7x3_3", c("branch7x7x3_2", c("branch7x7x3_1", x), padding=(0, 3)), padding=(3, 0))
    return np.concatenate([c("branch3x3_2", c("branch3x3_1", x), stride=2), c("branch7x7x3_4", b7, stride=2),
                           _pool(x, "max", 2, 0)], -1)
  # E_1 ("E") averages, E_2 ("E2") max-pools its pool branch
  b3 = c("branch3x3_1", x)
  bd = c("branch3x3dbl_2", c("branch3x3dbl_1", x), padding=1)
  pooled = _pool(x, "max", 1, 1) if kind == "E2" else _pool(x, "avg", 1, 1)
  return np.concatenate([c("branch1x1", x), c("branch3x3_2a", b3, padding=(0, 1)),
                         c("branch3x3_2b", b3, padding=(1, 0)), c("branch3x3dbl_3a", bd, padding=(0, 1)),
                         c("branch3x3dbl_3b", bd, padding=(1, 0)), c("branch_pool", pooled)], -1)


def _torch_bilinear(images, size):
  """F.interpolate(mode='bilinear', align_corners=False) as torch computes it (source index clamped at 0)."""
  def weights(n_in):
    m = np.zeros((size, n_in))
    for d in range(size):
      src = max((d + 0.5) * n_in / size - 0.5, 0.0)
      i0 = int(src)
      i1 = min(i0 + 1, n_in - 1)
      m[d, i0] += 1.0 - (src - i0)
      m[d, i1] += src - i0
    return m
  return np.einsum("ph,nhwc,qw->npqc", weights(images.shape[1]), images, weights(images.shape[2]))


def _reference_features(images, sd, size):
  x = images.astype(np.float64)
  x = np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x
  x = 2.0 * _torch_bilinear(x, size) - 1.0
  x = _conv_bn_relu(x, sd, "Conv2d_1a_3x3", stride=2)
  x = _conv_bn_relu(x, sd, "Conv2d_2a_3x3")
  x = _pool(_conv_bn_relu(x, sd, "Conv2d_2b_3x3", padding=1), "max", 2, 0)
  x = _conv_bn_relu(_conv_bn_relu(x, sd, "Conv2d_3b_1x1"), sd, "Conv2d_4a_3x3")
  x = _pool(x, "max", 2, 0)
  for name, kind in (("Mixed_5b", "A"), ("Mixed_5c", "A"), ("Mixed_5d", "A"), ("Mixed_6a", "B"), ("Mixed_6b", "C"),
                     ("Mixed_6c", "C"), ("Mixed_6d", "C"), ("Mixed_6e", "C"), ("Mixed_7a", "D"), ("Mixed_7b", "E"),
                     ("Mixed_7c", "E2")):
    x = _block(x, sd, kind, name + ".")
  return x.mean(axis=(1, 2))


def _random_state_dict(table, seed):
  """Random weights with the given names/shapes: He-scaled convs, BatchNorm stats away from identity."""
  rng = np.random.default_rng(seed)
  sd = {}
  for name, shape in table.items():
    if name.endswith("conv.weight"):
      fan_in = int(np.prod(shape[1:]))
      sd[name] = (rng.standard_normal(shape, dtype=np.float32) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    elif name.endswith(("bn.weight", "bn.running_var")):
      sd[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    else:
      sd[name] = rng.uniform(-0.2, 0.2, shape).astype(np.float32)
  return sd


# ----------------------------------------------------------------------------------------------- small pieces


@pytest.mark.parametrize("kernel,stride,padding", [((3, 3), 2, (0, 0)), ((1, 7), 1, (0, 3)), ((3, 1), 1, (1, 0))])
def test_basic_conv_with_folded_batch_norm(kernel, stride, padding):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 9, 8, 3)).astype(np.float32)
  sd = _random_state_dict({"c.conv.weight": (5, 3) + kernel, **{f"c.bn.{f}": (5,) for f in
                           ("weight", "bias", "running_mean", "running_var")}}, seed=2)
  module = inception.BasicConv2d(5, kernel, stride=stride, padding=padding)
  shapes = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
  params = inception.convert_state_dict(sd, {"c": shapes})["c"]
  got = module.apply({"params": params}, x)
  want = _conv_bn_relu(x, sd, "c", stride=stride, padding=padding)
  assert got.shape == want.shape and (want > 0).any() and (want == 0).any()
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["A", "B", "C", "D", "E", "E2"])
def test_block_matches_pytorch_fid_forward(kind):
  module = {"A": inception.FIDInceptionA(8), "B": inception.InceptionB(), "C": inception.FIDInceptionC(6),
            "D": inception.InceptionD(), "E": inception.FIDInceptionE("avg"),
            "E2": inception.FIDInceptionE("max")}[kind]
  x = np.random.default_rng(3).normal(size=(2, 5, 5, 4)).astype(np.float32)
  if kind == "E2":
    x[:, 0, :, :] = -5.0  # a negative border: max-pool must pad with -inf, not 0
  shapes = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
  sd = _random_state_dict(inception.expected_state_dict_shapes(shapes), seed=4)
  got = module.apply({"params": inception.convert_state_dict(sd, shapes)}, x)
  want = _block(x.astype(np.float64), sd, kind)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 28, 28, 1), (1, 90, 80, 3)])
def test_resize_matches_torch_bilinear(shape):
  images = np.random.default_rng(5).uniform(size=shape).astype(np.float32)
  got = inception.preprocess(images, SIZE)
  want = 2.0 * _torch_bilinear(np.repeat(images, 3, -1) if shape[-1] == 1 else images, SIZE) - 1.0
  np.testing.assert_allclose(got, want, rtol=0, atol=5e-5)  # jax and torch both weight in float32


# ----------------------------------------------------------------------------------------------- loading path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
  """A legacy-format file like pytorch-fid's (fc and num_batches_tracked included), random values."""
  table = inception.expected_state_dict_shapes()
  sd = _random_state_dict(table, seed=6)
  extras = {"fc.weight": np.zeros((1008, 2048), np.float32), "fc.bias": np.zeros((1008,), np.float32),
            **{k.replace("bn.weight", "bn.num_batches_tracked"): np.array(0, np.int64)
               for k in table if k.endswith("bn.weight")}}
  path = tmp_path_factory.mktemp("inception") / "synthetic_inception.pth"
  torch_weights.save_state_dict(path, {**sd, **extras}, format="legacy")
  return path, sd, inception.load_fid_inception(path, resize_to=SIZE)


def test_features_match_numpy_reference(synthetic):
  path, sd, model = synthetic
  images = np.random.default_rng(7).uniform(size=(3, 28, 28, 1)).astype(np.float32)
  feats = model.features(images, batch_size=2)  # pads the last batch: one compile for [2, 28, 28, 1]
  assert feats.shape == (3, inception.FEATURE_DIM) and feats.dtype == np.float32
  assert np.isfinite(feats).all() and (feats >= 0).all() and feats.std() > 0
  np.testing.assert_allclose(feats, _reference_features(images, sd, SIZE), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(model(images[:2])), feats[:2], rtol=1e-6, atol=1e-6)
  assert model.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
  assert model.protocol["weights_sha256"] == model.sha256 and not model.official


def test_missing_or_misshaped_tensor_names_it(synthetic):
  _, sd, _ = synthetic
  name = "Mixed_6c.branch7x7dbl_3.conv.weight"
  with pytest.raises(CheckpointError, match=rf"{name}.*\(160, 160, 1, 7\)"):
    inception.convert_state_dict({k: v for k, v in sd.items() if k != name})
  wrong = dict(sd, **{name: np.zeros((160, 160, 7, 1), np.float32)})
  with pytest.raises(CheckpointError, match=rf"{name}.*\(160, 160, 7, 1\).*\(160, 160, 1, 7\)"):
    inception.convert_state_dict(wrong)
  with pytest.raises(CheckpointError, match="AuxLogits.conv0.conv.weight"):
    inception.convert_state_dict(dict(sd, **{"AuxLogits.conv0.conv.weight": np.zeros((128, 768, 1, 1))}))


def test_missing_weights_file_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.delenv(inception.ENV_VAR, raising=False)
  monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
  assert inception.resolve_weights_path("") is None
  with pytest.raises(InceptionWeightsMissing) as err:
    inception.load_fid_inception(None)
  message = str(err.value)
  for needle in (inception.FID_WEIGHTS_URL, inception.ENV_VAR, inception.CONFIG_KEY, str(tmp_path / "torch_home")):
    assert needle in message
  absent = tmp_path / "nowhere" / "w.pth"
  with pytest.raises(InceptionWeightsMissing, match=str(absent)):
    inception.load_fid_inception(absent)
  # the env var (a file or a folder holding the standard name) is found; a corrupt standard file is refused
  official = tmp_path / inception.FID_WEIGHTS_FILENAME
  official.write_bytes(b"an interrupted download")
  monkeypatch.setenv(inception.ENV_VAR, str(tmp_path))
  assert inception.resolve_weights_path(None) == official
  with pytest.raises(CheckpointError, match="corrupt"):
    inception.load_fid_inception(None)
