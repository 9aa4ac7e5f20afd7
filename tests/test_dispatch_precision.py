"""Several update steps per dispatch (lax.scan) and bfloat16 mixed precision in the shared trainer.

Multi-step calls must give the numbers of single steps (bit for bit on these models) and log / checkpoint /
resume at the same steps; bf16 must put the networks' matmuls in bf16 while parameters, collections,
optimizer state and losses stay float32, and must still train.
"""
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import parallel
from gen_jax.errors import ConfigError
from gen_jax.train import loop
from gen_jax.models import precision as precision_lib
from gen_jax.train import step as step_lib
from gen_jax.train.checkpoint import Checkpoints
from gen_jax.train.metrics_log import read_metrics

from conftest import TINY

TOY_GAN = ("model.hidden=(16,16)", "data.batch_size=32")
SMALL_VAE = ("model.hidden=(32,)", "model.latent_dim=8")


def one_device():
  return parallel.make_mesh(jax.devices()[:1])


def assert_trees_equal(a, b):
  """Equal to float32 rounding: under the tests' XLA flags (no fusion emitters) a fused multi-step call and single
  steps may round differently in the last bit (measured: 12 of 32 values); any real difference is far larger."""
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), jax.device_get(a),
               jax.device_get(b))


# --- the dispatch schedule (pure Python, brute force) ------------------------------------------------------------

def _schedule(start, num_steps, periods, s, interrupt_at=None):
  """The call sizes the loop dispatches from `start`, and the steps it stops at after each call."""
  step, sizes, stops = start, [], []
  while step < num_steps:
    n = loop.steps_for_next_call(step, loop.next_event_step(step, num_steps, periods, interrupt_at), s)
    step += n
    sizes.append(n)
    stops.append(step)
    if interrupt_at is not None and step >= interrupt_at:
      break
  return sizes, stops


@pytest.mark.parametrize("s", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("start", [0, 3, 5])
def test_schedule_stops_on_every_event_step_and_otherwise_runs_full_calls(s, start):
  num_steps, periods = 23, (4, 5, 0)
  for interrupt_at in (None, 9):
    sizes, stops = _schedule(start, num_steps, periods, s, interrupt_at)
    end = num_steps if interrupt_at is None or interrupt_at <= start else interrupt_at
    assert stops[-1] == end and set(sizes) <= {1, s}
    events = {t for t in range(start + 1, end + 1) if t % 4 == 0 or t % 5 == 0 or t == end}
    assert events <= set(stops), (events - set(stops), stops)
    # Every call of size 1 was needed: S steps from there would have crossed an event.
    for before, n in zip([start] + stops[:-1], sizes):
      if n == 1 and s > 1:
        assert any(before < t < before + s for t in events | {end}) or before + s > end


# --- multi-step calls equal single steps -------------------------------------------------------------------------

@pytest.fixture
def call_counter(monkeypatch):
  """Counts the loop's calls of each compiled function, keyed by steps per call."""
  counts = {}
  real = step_lib.compile_train_step

  def counting(family, sampler, mesh, steps_per_call=1, **kwargs):
    fn = real(family, sampler, mesh, steps_per_call=steps_per_call, **kwargs)

    def call(*args):
      counts[steps_per_call] = counts.get(steps_per_call, 0) + 1
      return fn(*args)
    return call

  monkeypatch.setattr(loop.step_lib, "compile_train_step", counting)
  return counts


def test_vae_loop_with_three_steps_per_call_logs_checkpoints_and_resumes_like_single_steps(
    make_config, tmp_path, call_counter):
  config = make_config("configs/vae.py", *TINY, *SMALL_VAE, "train.num_steps=10", "train.log_every=4",
                       "train.checkpoint_every=5", "train.steps_per_dispatch=3")
  mesh = parallel.make_mesh(jax.devices()[:2])  # multi-device: the loop's per-call sync is on
  # Reference: ten single-step calls; a row holds the means of the metrics over the steps since the previous row
  # (log_every, checkpoints).
  run = loop.setup(config, mesh)
  one = run.compile_train_step()
  state, expected, window = run.init_state(), {}, []
  for step in range(1, 11):
    state, metrics = one(state, run.data, run.keys)
    window.append({k: float(v) for k, v in jax.device_get(metrics).items()})
    if step % 4 == 0 or step % 5 == 0 or step == 10:
      expected[step] = {k: pytest.approx(np.mean([m[k] for m in window]), rel=1e-5, abs=1e-6) for k in window[0]}
      window = []
  assert sorted(expected) == [4, 5, 8, 10]

  call_counter.clear()
  multi = loop.train(config, tmp_path / "s3", progress=False, mesh=mesh)
  # 0 -3-> 3 -1-> 4 -1-> 5 -3-> 8 -1-> 9 -1-> 10: S-step calls wherever they do not cross an event.
  assert call_counter == {3: 2, 1: 4}
  rows = read_metrics(tmp_path / "s3" / "metrics.jsonl")
  assert {r["step"]: {k: r.get(k) for k in expected[r["step"]]} for r in rows} == expected
  assert Checkpoints(tmp_path / "s3").steps() == [5, 10]
  assert_trees_equal(state, multi["state"])

  # Interrupted after step 4 (a 3-step call, then one step), resumed with 3-step calls: same end state.
  call_counter.clear()
  part = loop.train(config, tmp_path / "resumed", progress=False, interrupt_at=4, mesh=mesh)
  assert part["step"] == 4 and part["stopped_by"] and call_counter == {3: 1, 1: 1}
  call_counter.clear()
  resumed = loop.train(config, tmp_path / "resumed", progress=False, mesh=mesh)
  assert resumed["step"] == 10 and call_counter == {1: 3, 3: 1}
  assert_trees_equal(state, resumed["state"])


def test_multi_step_calls_of_a_conv_model_on_cpu_print_the_slowdown_note(make_config, tmp_path, capsys):
  config = make_config("configs/vae.py:conv", *TINY, "model.features=(4,8)", "model.latent_dim=2",
                       "train.num_steps=2", "train.log_every=2", "train.checkpoint_every=2",
                       "train.steps_per_dispatch=2")
  loop.train(config, tmp_path / "conv", progress=False, mesh=one_device())
  assert "steps_per_dispatch=2 with a convolutional model on CPU" in capsys.readouterr().out
  mlp = make_config("configs/vae.py", *TINY, *SMALL_VAE, "train.num_steps=2", "train.log_every=2",
                    "train.checkpoint_every=2", "train.steps_per_dispatch=2")
  loop.train(mlp, tmp_path / "mlp", progress=False, mesh=one_device())
  assert "convolutional model" not in capsys.readouterr().out


def test_gan_four_steps_per_call_equal_four_single_steps(make_config):
  """Toy GAN with the R1 penalty (an input gradient inside the loss): params, optimizer state, last metrics."""
  run = loop.setup(make_config("configs/gan_toy.py", *TINY, *TOY_GAN), one_device())
  one = run.compile_train_step()
  four = run.compile_train_step(steps_per_call=4)
  s1, s4 = run.init_state(), run.init_state()
  for _ in range(8):
    s1, m1 = one(s1, run.data, run.keys)
  for _ in range(2):
    s4, m4 = four(s4, run.data, run.keys)
  assert int(s4.step) == 8 and four._cache_size() == 1
  assert_trees_equal(s1, s4)
  assert_trees_equal(m1, m4)
  assert "r1_penalty" in m4


def test_steps_per_call_must_be_a_positive_int(make_config):
  run = loop.setup(make_config("configs/vae.py", *TINY), one_device())
  for bad in (0, -2, 2.5, True):
    with pytest.raises(ConfigError, match="steps_per_dispatch"):
      step_lib.make_multi_step(run.family, run.sampler, bad)


# --- mixed precision ---------------------------------------------------------------------------------------------

def test_precision_policy_casts():
  tree = {"w": jnp.ones((2, 2)), "label": jnp.arange(3), "none": None}
  f32 = precision_lib.make_precision("float32")
  assert f32.cast_to_compute(tree) is tree and f32.cast_collections_to_compute(tree) is tree
  bf16 = precision_lib.make_precision("bfloat16")
  out = bf16.cast_to_compute(tree)
  assert out["w"].dtype == jnp.bfloat16 and out["label"].dtype == tree["label"].dtype and out["none"] is None
  assert bf16.cast_to_output(out)["w"].dtype == jnp.float32
  coll = {"batch_stats": {"bn": {"mean": jnp.zeros(3), "var": jnp.ones(3)}, "sn": {"kernel/u": jnp.ones((1, 3)),
                                                                                     "kernel/sigma": jnp.ones(())}}}
  c = bf16.cast_collections_to_compute(coll)["batch_stats"]
  assert c["bn"]["mean"].dtype == c["bn"]["var"].dtype == jnp.float32
  assert c["sn"]["kernel/u"].dtype == c["sn"]["kernel/sigma"].dtype == jnp.bfloat16
  with pytest.raises(ConfigError, match="compute_dtype"):
    precision_lib.make_precision("float16")


def test_gradient_through_bf16_casts_is_float32_and_close_to_the_float32_gradient():
  kx, kw = jax.random.split(jax.random.key(0))
  x, w = jax.random.normal(kx, (16, 32)), jax.random.normal(kw, (32, 8)) / math.sqrt(32)
  policy = precision_lib.make_precision("bfloat16")

  def loss(w, policy):
    out = policy.wrap(lambda w, x: jnp.tanh(x @ w))(w, x)
    return jnp.sum(out ** 2)

  g16, g32 = jax.jit(lambda w: (jax.grad(loss)(w, policy), jax.grad(loss)(w, precision_lib.FLOAT32)))(w)
  assert g16.dtype == jnp.float32
  # bf16 keeps 8 significant bits: a relative error of a few 2**-8 per element, far below the gradient's size.
  np.testing.assert_allclose(g16, g32, rtol=0.05, atol=0.05 * float(jnp.max(jnp.abs(g32))))
  assert not np.array_equal(g16, g32)  # the computation really ran in bf16


def _dots(hlo: str) -> list[str]:
  return re.findall(r"stablehlo\.(?:dot_general|convolution)[^\n]*", hlo)


@pytest.mark.parametrize("spec,extra", [("configs/vae.py", ()), ("configs/gan_toy.py:hinge", TOY_GAN),
                                        ("configs/vaegan.py", ("model.g_width=8", "model.d_width=8",
                                                               "data.batch_size=16"))])
def test_bf16_update_step_runs_networks_in_bf16_and_keeps_float32_state(make_config, spec, extra):
  """Lowered (not compiled) update step: bf16 matmuls / convolutions; state and metrics float32."""
  lowered = {}
  for dtype in ("float32", "bfloat16"):
    run = loop.setup(make_config(spec, *TINY, *extra, f"train.compute_dtype={dtype}"), one_device())
    abstract = run.abstract_state()
    traced = jax.jit(step_lib.make_train_step(run.family, run.sampler)).trace(abstract, run.data, run.keys)
    lowered[dtype] = _dots(traced.lower().as_text())
    new_state, metrics = traced.out_info
    assert jax.tree.structure(new_state) == jax.tree.structure(abstract)
    for (path, new), old in zip(jax.tree_util.tree_leaves_with_path(new_state), jax.tree.leaves(abstract)):
      assert new.dtype == old.dtype and new.dtype in (jnp.float32, jnp.int32), jax.tree_util.keystr(path)
    assert all(m.dtype == jnp.float32 for m in metrics.values())
  assert lowered["float32"] and not any("bf16" in d for d in lowered["float32"])
  bf16 = [d for d in lowered["bfloat16"] if "bf16" in d]
  # Every network matmul / convolution (those of the float32 step, minus the few metrics on float32 data, e.g.
  # the GAN's sample_diversity distances) runs in bf16.
  assert len(bf16) >= len(lowered["float32"]) - 2, (len(bf16), len(lowered["float32"]))
  assert all("xf32" not in d.split(":")[-1] for d in bf16)


def test_bf16_vae_trains_like_float32(make_config):
  """50 steps (two 25-step calls) on tiny MNIST: the bf16 loss falls like the float32 one and is float32."""
  losses = {}
  for dtype in ("float32", "bfloat16"):
    run = loop.setup(make_config("configs/vae.py", *TINY, *SMALL_VAE, "train.num_steps=50",
                                 f"train.compute_dtype={dtype}"),
                     one_device())
    fn = run.compile_train_step(steps_per_call=25)
    state = run.init_state()
    losses[dtype] = []
    for _ in range(2):
      state, metrics = fn(state, run.data, run.keys)
      assert metrics["loss"].dtype == jnp.float32
      losses[dtype].append(float(metrics["loss"]))
    assert all(x.dtype in (jnp.float32, jnp.int32) for x in jax.tree.leaves(state))
  # A decoder predicting p = 1/2 for each of the 784 binary pixels scores 784 ln 2 = 543 nats; both runs must
  # fall from step 25 to 50 and end well below it, and bf16 must be within 5% of float32 at both steps.
  coin = 784 * math.log(2)
  for dtype, (l25, l50) in losses.items():
    assert l50 < l25 < coin and l50 < 0.75 * coin, (dtype, l25, l50)
  np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.05)
