"""The benchmark command (gen_jax.bench): JSON rows, XLA FLOP counts, the device-scaling runner, the PyTorch
reference being the same architecture (same parameter counts; same loss and gradients given the same weights)
and running in its own process with its own defaults (eager and torch.compile rows, the protocol's threads)."""
from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import TINY

from gen_jax.bench import runner, torch_process, torch_reference
from gen_jax.bench.peak import compiled_flops
from gen_jax.errors import ConfigError

REQUIRED = ("config", "images_per_s", "steps_per_s", "compile_s", "flops_per_step", "gflops_per_s",
            "fraction_of_peak", "memory", "hardware")


@pytest.fixture
def data_overrides(shared_data_dir, tfds_cache_dir):
  return [f"--set=data.data_dir={shared_data_dir}", f"--set=data.tfds_dir={tfds_cache_dir}",
          "--set=data.num_train=256"]


def test_cli_writes_json_rows(tmp_path, data_overrides):
  from gen_jax.bench.__main__ import main
  out = tmp_path / "bench.json"
  md = tmp_path / "bench.md"
  args = ["--configs=mlp_vae@32", "--min_steps=2", "--min_seconds=0", "--repeats=1", "--warmup=1",
          "--peak_size=128", f"--json={out}", f"--markdown={md}", "--quiet", "--dot_ceiling", *data_overrides]
  if torch_process.available():
    args += ["--torch", "--torch_modes=eager", "--torch_threads=1"]
  assert main(args) == 0
  rows = json.loads(out.read_text())
  assert len(rows) == 1
  row = rows[0]
  for key in REQUIRED:
    assert key in row, key
  assert row["config"] == "mlp_vae@32" and row["batch_size"] == 32 and row["num_devices"] == jax.device_count()
  for key in ("images_per_s", "steps_per_s", "compile_s", "flops_per_step", "gflops_per_s", "fraction_of_peak"):
    assert math.isfinite(row[key]) and row[key] > 0, (key, row[key])
  assert row["images_per_s"] == pytest.approx(row["steps_per_s"] * 32)
  # An MLP VAE step is at least the 3 matmuls (forward, two backward) of each dense layer: 6 * B * weights.
  weights = 784 * 200 + 200 * 200 + 2 * 200 * 50 + 50 * 200 + 200 * 200 + 200 * 784
  assert row["flops_per_step"] >= 6 * 32 * weights
  assert row["memory"]["bytes"] > 0 and row["memory"]["source"]
  if torch_process.available():
    assert row["torch_steps_per_s"] > 0 and row["jax_over_torch"] > 0 and row["torch_info"]["threads"] == 1
  assert "| mlp_vae@32 | 32 |" in md.read_text()
  # The matmul-only ceiling: the 17 matmuls of the 6 products (the two heads are one; no input gradient for
  # the data layer), never more FLOPs than XLA counts for the whole step.
  ceiling = row["dot_ceiling"]
  assert ceiling["num_matmuls"] == 17 and ceiling["batch"] == 32
  assert ceiling["flops"] == 2 * 32 * (3 * weights - 784 * 200) <= row["flops_per_step"]
  assert 0 < ceiling["fraction_of_peak"] < 10 and math.isfinite(ceiling["gflops_per_s"])
  assert "mlp_vae@32: ceiling" in md.read_text()
  assert row["peak_dtype"] == row["peak"]["dtype"] == "float32" and "Matmul peak (float32)" in md.read_text()


def test_mixed_precision_rows_are_measured_against_the_bfloat16_matmul_peak(tmp_path, data_overrides):
  """A bfloat16 step's fraction of peak is taken against a bfloat16 matmul (tensor cores on a GPU), not the
  float32 one; the report says which."""
  from gen_jax.bench.__main__ import main
  out, md = tmp_path / "bench.json", tmp_path / "bench.md"
  assert main(["--configs=mlp_vae@32", "--compute_dtype=bfloat16", "--min_steps=2", "--min_seconds=0",
               "--repeats=1", "--warmup=1", "--peak_size=128", f"--json={out}", f"--markdown={md}", "--quiet",
               *data_overrides]) == 0
  row = json.loads(out.read_text())[0]
  assert row["compute_dtype"] == "bfloat16" and row["peak_dtype"] == row["peak"]["dtype"] == "bfloat16"
  assert "bfloat16" in row["peak"]["protocol"] and math.isfinite(row["fraction_of_peak"])
  assert "Matmul peak (bfloat16)" in md.read_text() and "Matmul peak (float32)" not in md.read_text()


@pytest.mark.parametrize("m,k,n", [(64, 32, 16), (128, 96, 40)])
def test_cost_analysis_counts_matmul_flops(m, k, n):
  compiled = jax.jit(lambda a, b: a @ b).lower(jnp.ones((m, k)), jnp.ones((k, n))).compile()
  assert compiled_flops(compiled) == 2 * m * n * k


def test_parse_spec():
  assert runner.parse_spec("mlp_vae@2048") == runner.BenchSpec("mlp_vae@2048", "configs/vae.py",
                                                               ("data.batch_size=2048",))
  assert runner.parse_spec("configs/gan.py:resnet").config_spec == "configs/gan.py:resnet"
  with pytest.raises(ConfigError, match="unknown benchmark config"):
    runner.parse_spec("mlp_vea")
  with pytest.raises(ConfigError, match="batch size"):
    runner.parse_spec("mlp_vae@big")


def test_scaling_runs_one_and_two_devices(shared_data_dir, tfds_cache_dir):
  from gen_jax.bench.scaling import scaling_rows
  extra = [f"--set=data.data_dir={shared_data_dir}", f"--set=data.tfds_dir={tfds_cache_dir}",
           "--set=data.num_train=256", "--min_steps=2", "--min_seconds=0", "--repeats=1", "--warmup=1"]
  rows = scaling_rows("mlp_vae@32", (1, 2), extra)
  assert [r["num_devices"] for r in rows] == [1, 2]
  assert all(r["images_per_s"] > 0 and r["kind"] == "scaling" for r in rows)
  assert rows[0]["speedup_vs_1"] == 1.0 and rows[1]["speedup_vs_1"] > 0


SMALL_GAN = ("model.g_width=8", "model.d_width=8", "data.batch_size=16")
CONFIGS = [("configs/vae.py", ()), ("configs/vae.py:conv", ()), ("configs/gan.py", SMALL_GAN),
           ("configs/gan.py:resnet", SMALL_GAN), ("configs/vaegan.py", SMALL_GAN)]


@pytest.mark.parametrize("spec,extra", CONFIGS)
def test_torch_reference_has_the_same_parameter_counts(make_config, spec, extra):
  pytest.importorskip("torch")
  from gen_jax.data import load_dataset
  from gen_jax.models.registry import build_family
  from gen_jax.train.step import run_keys
  config = make_config(spec, *TINY, *extra)
  dataset = load_dataset(config.data)
  family = build_family(config, dataset)
  h, w, c = dataset.image_shape
  batch = {"image": jax.ShapeDtypeStruct((config.data.batch_size, h, w, c), jnp.float32),
           "label": jax.ShapeDtypeStruct((config.data.batch_size,), jnp.int32)}
  models = jax.eval_shape(family.init_models, run_keys(0)["init"], batch)
  jax_counts = {name: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(m.params)) for name, m in models.items()}
  bench = torch_reference.TorchBench(config, dataset, num_threads=1)
  nets = {"vae": getattr(bench, "model", None), "generator": getattr(bench, "g", None),
          "decoder": getattr(bench, "g", None), "discriminator": getattr(bench, "d", None),
          "encoder": getattr(bench, "enc", None)}
  torch_counts = {name: sum(p.numel() for p in nets[name].parameters()) for name in jax_counts}
  assert torch_counts == jax_counts
  bench.call(1)  # one full update (every optimizer step) runs


def test_torch_mlp_vae_matches_jax_loss_and_gradients(make_config):
  torch = pytest.importorskip("torch")
  from gen_jax.data import load_dataset
  from gen_jax.models.registry import build_family
  config = make_config("configs/vae.py", *TINY)
  dataset = load_dataset(config.data)
  family = build_family(config, dataset)
  x = jax.random.bernoulli(jax.random.key(0), jnp.asarray(dataset.train.images[:8], jnp.float32) / 255.0)
  x = x.astype(jnp.float32)
  params = family.model.init(jax.random.key(1), x)["params"]
  key = jax.random.key(2)
  batch = {"image": x, "label": jnp.zeros((8,), jnp.int32)}
  (loss, _), grads = jax.jit(jax.value_and_grad(family.loss, has_aux=True))(params, batch, key, 0)
  from gen_jax import threefry
  eps = threefry.normal(key, (1, 8, int(config.model.latent_dim)))[0]  # the draw of vae_loss's one sample

  model = torch_reference.MlpVae(784, tuple(config.model.hidden), int(config.model.latent_dim), "tanh").double()
  torch_reference.load_mlp_vae_params(model, jax.tree.map(lambda a: np.asarray(a, np.float64), params))
  t_loss = torch_reference.vae_loss(model, torch.from_numpy(np.asarray(x, np.float64).transpose(0, 3, 1, 2)),
                                    torch.from_numpy(np.asarray(eps, np.float64)))
  t_loss.backward()
  assert t_loss.item() == pytest.approx(float(loss), rel=1e-5)
  np.testing.assert_allclose(model.out.weight.grad.numpy().T, grads["decoder"]["body"]["out"]["kernel"],
                             rtol=1e-3, atol=1e-5)
  np.testing.assert_allclose(model.enc[0].weight.grad.numpy().T, grads["encoder"]["body"]["dense_0"]["kernel"],
                             rtol=1e-3, atol=1e-5)


def _row(config, batch, fraction):
  return {"config": config, "batch_size": batch, "fraction_of_peak": fraction, "fraction_of_best_peak": fraction}


def test_peak_target_judges_only_the_mlp_vae_at_batch_1000():
  from gen_jax.bench import report
  # The default batch (100): reported, not judged, and the way to check the target is named.
  lines = report.targets([_row("mlp_vae", 100, 0.386)])
  assert lines == ["- mlp_vae (batch 100): 38.6% of the matmul peak timed in the same rounds -- not judged: "
                   "the target >= 70% is for mlp_vae@1000; run --configs=mlp_vae@1000 to check it"]
  assert not any("NOT met" in line for line in lines)
  # At batch 1000 the verdict uses only the batch-1000 rows, whatever the other rows reached.
  lines = report.targets([_row("mlp_vae", 100, 0.95), _row("mlp_vae@1000", 1000, 0.65)])
  assert lines[0].startswith("- MLP VAE at batch 1000: best 65.0% of the matmul peak") and "NOT met" in lines[0]
  assert lines[1].endswith("not judged: the target >= 70% is for mlp_vae@1000")
  assert "-> met (target >= 70%)" in report.targets([_row("configs/vae.py@1000", 1000, 0.71)])[0]
  assert report.targets([_row("dcgan", 100, 0.2)]) == []
  # The dot-ceiling line of a row is written once, however many MLP VAE rows there are.
  ceiling = dict(_row("mlp_vae@1000", 1000, 0.70), dot_ceiling={"fraction_of_peak": 0.8, "num_matmuls": 17,
                                                                 "gflops_per_s": 150.0, "protocol": "p"})
  lines = report.targets([_row("mlp_vae", 100, 0.4), ceiling, _row("mlp_vae@500", 500, 0.6)])
  assert sum("ceiling 80.0% of peak" in line for line in lines) == 1


def test_torch_child_env_is_the_users_startup_env_without_jax_settings():
  startup = {"PATH": "/bin", "OMP_NUM_THREADS": "3", "XLA_FLAGS": "--xla_cpu_foo", "JAX_PLATFORMS": "cpu",
             "PYTHONPATH": "/x"}
  env = torch_process.child_env(startup)
  assert env["PATH"] == "/bin" and env["OMP_NUM_THREADS"] == "3"   # the user's own threading setting stays
  assert "XLA_FLAGS" not in env and "JAX_PLATFORMS" not in env
  assert env["PYTHONPATH"].split(os.pathsep) == [str(runner.REPO_ROOT), "/x"]


TORCH_TINY = ("data.num_train=256", "data.batch_size=32")


def test_torch_process_does_not_inherit_what_the_project_set(monkeypatch, shared_data_dir):
  """Settings made in the benchmark process after it started (as the old reference's OMP_WAIT_POLICY=PASSIVE
  was) never reach the PyTorch process; it runs at PyTorch's default threads and reports them."""
  pytest.importorskip("torch")
  from gen_jax.bench import STARTUP_ENV
  monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
  monkeypatch.setenv("GOMP_SPINCOUNT", "7")
  with torch_process.TorchProcess("configs/vae.py", (f"data.data_dir={shared_data_dir}", *TORCH_TINY)) as child:
    assert child.error is None, child.error
    info = child.info
    assert info["omp_wait_policy"] == STARTUP_ENV.get("OMP_WAIT_POLICY", "")
    assert info["env"].get("GOMP_SPINCOUNT") == STARTUP_ENV.get("GOMP_SPINCOUNT")
    assert info["threads"] >= 1 and info["parallel_backend"] and info["mode"] == "eager"
    assert info["images_per_step"] == 32 and info["compile_s"] >= 0
    assert child.call(2) > 0


def test_torch_compile_row_says_why_when_it_cannot_compile(shared_data_dir):
  pytest.importorskip("torch")
  child = torch_process.TorchProcess("configs/vae.py", (f"data.data_dir={shared_data_dir}", *TORCH_TINY),
                                     mode="compile", backend="no_such_backend")
  assert child.error and "no_such_backend" in child.error and "\n" not in child.error
  assert child.proc.poll() is not None   # closed


def test_cli_torch_eager_and_compile_rows_and_protocol(tmp_path, data_overrides):
  """--torch: the eager and torch.compile processes alternate with JAX; ratios per round and their median, the
  compile time, and both sides' threading in the JSON and the protocol. The 'eager' dynamo backend stands in
  for inductor (its C++ compile takes a minute here); the wrapping and timing are the same."""
  pytest.importorskip("torch")
  from gen_jax.bench.__main__ import main
  out, md = tmp_path / "bench.json", tmp_path / "bench.md"
  assert main(["--configs=mlp_vae@32", "--min_steps=2", "--min_seconds=0", "--repeats=2", "--warmup=1",
               "--peak_size=128", "--torch", "--torch_compile_backend=eager", f"--json={out}", f"--markdown={md}",
               "--quiet", *data_overrides]) == 0
  row = json.loads(out.read_text())[0]
  for key in ("torch", "torch_compile"):
    assert len(row[f"{key}_rounds_steps_per_s"]) == 2 and row[f"{key}_steps_per_s"] > 0
    ratios = row[f"jax_over_{key}_rounds"]
    assert len(ratios) == 2 and all(math.isfinite(r) and r > 0 for r in ratios)
    assert row[f"jax_over_{key}"] == pytest.approx(float(np.median(ratios)))
    assert row[f"{key}_info"]["threads"] >= 1 and "omp_wait_policy" in row[f"{key}_info"]
  assert row["torch_compile_info"]["backend"] == "eager" and row["torch_compile_s"] >= 0
  assert row["torch_info"]["pid"] != row["torch_compile_info"]["pid"] != os.getpid()
  jax_side = row["jax_threading"]
  assert jax_side["num_devices"] == jax.device_count() and "xla_flags" in jax_side and jax_side["usable_cores"]
  text = md.read_text()
  assert "own process" in text and "OMP_WAIT_POLICY" in text and "threads" in text and "torch.compile" in text
  assert "| jax/eager |" in text and "| jax/compile |" in text


def test_cpu_sized_batches_for_default_large_configs(monkeypatch):
  from gen_jax.bench import __main__ as bench_main
  seen = {}

  def fake_parse_specs(entries, configs):
    seen["entries"] = entries
    return []
  monkeypatch.setattr(runner, "parse_specs", fake_parse_specs)
  with pytest.raises(ConfigError, match="no benchmark entries"):
    bench_main.main(["--no_peak", "--quiet"])
  if jax.default_backend() == "cpu":
    assert seen["entries"].split(",") == ["mlp_vae", "conv_vae", "dcgan", "resnet_gan@16", "vaegan"]
  with pytest.raises(ConfigError):
    bench_main.main(["--configs=resnet_gan@64", "--no_peak", "--quiet"])
  assert seen["entries"] == "resnet_gan@64"   # an explicit batch is kept
  with pytest.raises(ConfigError, match="no benchmark entries"):   # --config alone (crashed on CPU before)
    bench_main.main(["--config=configs/vae.py", "--no_peak", "--quiet"])
  assert seen["entries"] == ""


# --- rewritten layers of the speed work: the same function and parameters --------------------------------------

@pytest.mark.parametrize("shape,cout,k", [((2, 7, 7, 5), 1, 3), ((3, 8, 6, 4), 3, 3), ((2, 6, 6, 2), 2, 4)])
def test_conv_same_by_taps_is_the_same_convolution(shape, cout, k):
  from gen_jax.nets.layers import conv_same_by_taps
  kx, kk, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, shape)
  kernel = jax.random.normal(kk, (k, k, shape[-1], cout))
  ref = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",   # noqa: E731
                                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
  out_ref, vjp_ref = jax.vjp(ref, x, kernel)
  out, vjp = jax.vjp(conv_same_by_taps, x, kernel)
  np.testing.assert_allclose(out, out_ref, rtol=1e-5, atol=1e-5)
  g = jax.random.normal(kg, out.shape)
  for a, b in zip(vjp(g), vjp_ref(g)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_few_channel_conv_has_nn_conv_parameters_and_outputs():
  import flax.linen as nn
  from gen_jax.nets.layers import FewChannelConv
  x = jax.random.normal(jax.random.key(1), (2, 5, 5, 8))
  ref, new = nn.Conv(1, (3, 3), padding="SAME"), FewChannelConv(1, 3)
  p_ref, p_new = ref.init(jax.random.key(2), x), new.init(jax.random.key(2), x)
  assert jax.tree.structure(p_ref) == jax.tree.structure(p_new)
  for a, b in zip(jax.tree.leaves(p_ref), jax.tree.leaves(p_new)):
    np.testing.assert_array_equal(a, b)
  p_ref = jax.tree.map(lambda a: a + 0.1, p_ref)   # a non-zero bias
  np.testing.assert_allclose(new.apply(p_ref, x), ref.apply(p_ref, x), rtol=1e-5, atol=1e-5)


def test_dcgan_generator_parameters_unchanged_by_the_image_layer():
  """The generator's 'out' layer keeps nn.Conv's parameter paths and shapes (checkpoints stay loadable)."""
  from gen_jax.nets.dcgan import DCGANGenerator
  z = jnp.zeros((2, 16))
  params = DCGANGenerator((28, 28, 1), width=8).init(jax.random.key(0), z, train=False)["params"]
  assert params["out"]["kernel"].shape == (3, 3, 4, 1) and params["out"]["bias"].shape == (1,)


def test_step_profile_attributes_op_time_to_kinds_and_layers(make_config):
  """python -m gen_jax.bench.step_profile: XLA's per-op times of traced steps, by op kind and by layer."""
  from gen_jax.bench import step_profile
  assert step_profile.layer_of("jit(train_step)/transpose(jvp(DCGANDiscriminator))/conv_1/conv") == \
      "bwd DCGANDiscriminator/conv_1"
  assert step_profile.layer_of("jit(train_step)/jvp(DCGANGenerator)/out/dot_general") == "fwd DCGANGenerator/out"
  config = make_config("configs/vae.py", *TINY)
  text = step_profile.profile(config, steps=2)
  total = float(text.split("op time per step: ")[1].split(" ms")[0])
  assert total > 0 and "by op kind:" in text and "top ops:" in text
  layers = text.split("by layer:")[1].split("top ops:")[0]
  assert "fwd VAE" in layers and "bwd VAE" in layers   # the model's forward and gradient ops, by module


@pytest.mark.parametrize("shape,cout,k,stride", [((2, 28, 28, 1), 8, 4, 2), ((2, 28, 28, 1), 4, 3, 2),
                                                 ((3, 9, 7, 3), 5, 3, 1), ((2, 7, 7, 2), 3, 4, 2)])
def test_conv_same_by_patches_is_the_same_convolution(shape, cout, k, stride):
  from gen_jax.nets.layers import conv_same_by_patches
  kx, kk, kg = jax.random.split(jax.random.key(3), 3)
  x = jax.random.normal(kx, shape)
  kernel = jax.random.normal(kk, (k, k, shape[-1], cout))
  ref = lambda x, w: jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME",   # noqa: E731
                                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
  out_ref, vjp_ref = jax.vjp(ref, x, kernel)
  out, vjp = jax.vjp(lambda x, w: conv_same_by_patches(x, w, stride), x, kernel)
  np.testing.assert_allclose(out, out_ref, rtol=1e-5, atol=1e-5)
  g = jax.random.normal(kg, out.shape)
  for a, b in zip(vjp(g), vjp_ref(g)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("use_bias", [True, False])
def test_small_input_conv_has_nn_conv_parameters_and_outputs(use_bias):
  import flax.linen as nn
  from gen_jax.nets.layers import SmallInputConv
  x = jax.random.normal(jax.random.key(1), (2, 28, 28, 1))
  ref = nn.Conv(16, (4, 4), strides=(2, 2), padding="SAME", use_bias=use_bias)
  new = SmallInputConv(16, 4, 2, use_bias)
  p_ref, p_new = ref.init(jax.random.key(2), x), new.init(jax.random.key(2), x)
  assert jax.tree.structure(p_ref) == jax.tree.structure(p_new)
  for a, b in zip(jax.tree.leaves(p_ref), jax.tree.leaves(p_new)):
    np.testing.assert_array_equal(a, b)
  p_ref = jax.tree.map(lambda a: a + 0.1, p_ref)
  np.testing.assert_allclose(new.apply(p_ref, x), ref.apply(p_ref, x), rtol=1e-5, atol=1e-5)


def test_image_layers_keep_their_parameters_under_spectral_norm_and_in_the_conv_vae():
  """The discriminator's and the conv encoder's image layers and the conv decoder's output layer keep nn.Conv's
  parameter paths and shapes; with spectral norm the discriminator still normalizes its first kernel."""
  from gen_jax.nets.conv import ConvDecoder, ConvEncoder
  from gen_jax.nets.dcgan import DCGANDiscriminator
  x = jnp.zeros((2, 28, 28, 1))
  d = DCGANDiscriminator(width=8, spectral_norm=True).init(jax.random.key(0), x, train=False)
  assert d["params"]["conv_0"]["conv"]["kernel"].shape == (4, 4, 1, 8)
  assert d["batch_stats"]["conv_0"]["sn"]["conv/kernel/u"].shape == (1, 8)   # its spectral-norm state
  e = ConvEncoder((8, 16), 4).init(jax.random.key(0), x)["params"]
  assert e["conv_0"]["kernel"].shape == (3, 3, 1, 8) and e["conv_0"]["bias"].shape == (8,)
  dec = ConvDecoder((16, 8), (28, 28, 1)).init(jax.random.key(0), jnp.zeros((2, 4)))["params"]
  assert dec["out"]["kernel"].shape == (3, 3, 8, 1) and dec["out"]["bias"].shape == (1,)


def test_image_layers_ab_compiles_both_forms_and_restores_the_defaults(make_config):
  from gen_jax.bench import image_layers
  from gen_jax.nets import layers as nets_layers
  config = make_config("configs/vae.py:conv", *TINY)
  as_conv, as_matmul = image_layers.build(config, True), image_layers.build(config, False)
  assert (nets_layers.SMALL_INPUT_CHANNELS, nets_layers.FEW_OUTPUT_CHANNELS) == (3, 3)
  count = lambda bench: bench.compiled.as_text().count(" convolution(")   # noqa: E731
  assert count(as_conv) > count(as_matmul)   # the image layers (forward and gradients) left XLA's convolutions


# --- the 32x32 colour entries (issue 20), on the synthetic CIFAR-10 binary release of test_cifar10.py ------------

COLOUR_SMALL = {"dcgan_cifar10": ("model.g_width=8", "model.d_width=8"),
                "conv_vae_cifar10": ("model.features=(8, 16)", "model.latent_dim=8")}


def _synthetic_cifar10(tmp_path) -> list[str]:
  from tests.test_cifar10 import write_binary_release
  write_binary_release(tmp_path)   # 20 train / 4 test images
  return [f"data.data_dir={tmp_path}", f"data.tfds_dir={tmp_path / 'tfds'}", "data.num_train=20",
          "data.num_test=4", "data.batch_size=8"]


@pytest.mark.parametrize("name", sorted(COLOUR_SMALL))
def test_colour_entries_bench_two_steps_at_32x32x3(tmp_path, name):
  from gen_jax.bench.__main__ import main
  assert runner.BENCH_CONFIGS[name].endswith("cifar10")
  out = tmp_path / "bench.json"
  sets = [f"--set={s}" for s in (*_synthetic_cifar10(tmp_path), *COLOUR_SMALL[name])]
  assert main([f"--configs={name}@8", "--min_steps=2", "--min_seconds=0", "--repeats=1", "--warmup=1", "--no_peak",
               f"--json={out}", "--quiet", *sets]) == 0
  row = json.loads(out.read_text())[0]
  assert row["config"] == f"{name}@8" and row["batch_size"] == 8 and row["steps_per_s"] > 0
  assert row["flops_per_step"] > 0 and not row["cpu_sized_batch"]


def test_colour_entries_run_at_a_cpu_sized_batch_by_default(monkeypatch):
  from gen_jax.bench import __main__ as bench_main
  seen = {}
  monkeypatch.setattr(runner, "parse_specs", lambda entries, configs: seen.setdefault("entries", entries) and [])
  with pytest.raises(ConfigError, match="no benchmark entries"):
    bench_main.main(["--configs=dcgan_cifar10,conv_vae_cifar10", "--no_peak", "--quiet"])
  if jax.default_backend() == "cpu":
    assert seen["entries"] == "dcgan_cifar10@32,conv_vae_cifar10@32"


@pytest.mark.parametrize("name", sorted(COLOUR_SMALL))
def test_torch_reference_of_colour_entries_has_the_same_parameter_counts(tmp_path, make_config, name):
  """The PyTorch nets take 3 channels at 32x32 (the VAE's decoder 2 x 3 logistic parameters) and train a step."""
  extra = (*_synthetic_cifar10(tmp_path), *COLOUR_SMALL[name])
  test_torch_reference_has_the_same_parameter_counts(make_config, runner.BENCH_CONFIGS[name], extra)


def test_torch_discretized_logistic_matches_gen_jax():
  torch = pytest.importorskip("torch")
  from gen_jax.objectives.likelihoods import DiscretizedLogisticLikelihood
  rng = np.random.default_rng(0)
  x = (rng.integers(0, 256, (4, 5, 6, 3)) / 255.0).astype(np.float64)
  x[0, 0, 0], x[1, 1, 1] = 0.0, 1.0   # both edge bins
  out = np.concatenate([rng.uniform(-0.5, 1.5, x.shape), rng.uniform(-9.0, 2.0, x.shape)], axis=-1)
  with jax.enable_x64(True):
    want = np.asarray(DiscretizedLogisticLikelihood().log_prob(jnp.asarray(x), jnp.asarray(out)))
  got = torch_reference.discretized_logistic_log_prob(torch.from_numpy(x.transpose(0, 3, 1, 2)),
                                                      torch.from_numpy(out.transpose(0, 3, 1, 2))).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-10)


def test_colour_vae_likelihood_defaults_are_the_readmes():
  """:conv,cifar10 and :conv,folder evaluate NLL with k=100 on a 2000-image subset (README's configs table); the
  MNIST conv VAE keeps k=5000 on the whole test split."""
  import re

  from gen_jax import config as config_lib
  row = next(line for line in (runner.REPO_ROOT / "README.md").read_text().splitlines()
             if line.startswith("| `configs/vae.py:conv,cifar10`"))
  k, n = (int(v) for v in re.search(r"k=(\d+) importance samples on a .*?(\d+)-image", row).groups())
  for variant in ("conv,cifar10", "conv,folder"):
    c = config_lib.load_config_file(str(runner.REPO_ROOT / f"configs/vae.py:{variant}"))
    assert (c.eval.num_importance_samples, c.eval.num_examples) == (k, n) == (100, 2000), variant
  c = config_lib.load_config_file(str(runner.REPO_ROOT / "configs/vae.py:conv"))
  assert (c.eval.num_importance_samples, c.eval.num_examples) == (5000, 0)
