"""config.train.cpu_conv_kernels: XLA:CPU's own convolution kernels instead of YNNPACK's, in the train step.

The option must reach the compiled train step (no convolution left inside a YNNPACK fusion), must leave
the numbers of a step unchanged up to float rounding, and must be refused with a message when misspelt.
"""
import re

import jax
import numpy as np
import pytest

from gen_jax import parallel
from gen_jax.errors import ConfigError
from gen_jax import cpu_kernels
from gen_jax.train import loop

from conftest import TINY

CONV_VAE = ("model.features=(8,16)", "model.latent_dim=4")


def ynn_convolutions(hlo: str) -> int:
  """How many convolutions of compiled HLO text sit inside a YNNPACK fusion."""
  bodies = dict(re.findall(r"^%?(\S+) [^\n]*\{\n(.*?)\n\}", hlo, flags=re.M | re.S))
  called = re.findall(r"calls=%?([\w.\-]+)[^\n]*__ynn_fusion", hlo)
  return sum(bodies.get(name, "").count(" convolution(") for name in called)


def plain_convolutions(hlo: str) -> int:
  return len(re.findall(r" convolution\(", hlo)) - ynn_convolutions(hlo)


@pytest.fixture(scope="module")
def compiled_steps(make_config):
  """{choice: (run, compiled train step)} for a small conv VAE, compiled once for the module."""
  out = {}
  for choice in cpu_kernels.CPU_CONV_KERNELS:
    run = loop.setup(make_config("configs/vae.py:conv", *TINY, *CONV_VAE, f"train.cpu_conv_kernels={choice}"),
                     parallel.make_mesh(jax.devices()[:1]))
    out[choice] = run, run.compile_train_step().lower(run.init_state(), run.data, run.keys).compile()
  return out


def test_xla_choice_takes_every_convolution_of_the_train_step_out_of_ynnpack(compiled_steps):
  text = compiled_steps["xla"][1].as_text()
  assert ynn_convolutions(text) == 0
  # A conv VAE step has 3 convolutions per conv layer (forward, input and kernel gradient), minus the input
  # gradient of the first layer: at least 2 + 3 + 3 here, all on XLA's kernels.
  assert plain_convolutions(text) >= 8
  default_text = compiled_steps["ynnpack"][1].as_text()
  if ynn_convolutions(default_text) == 0:
    pytest.skip("this jaxlib does not hand convolutions to YNNPACK by default: nothing to compare")
  assert plain_convolutions(default_text) < plain_convolutions(text)


def test_both_kernel_choices_compute_the_same_train_step(compiled_steps):
  results = {}
  for choice, (run, step) in compiled_steps.items():
    state = run.init_state()
    for _ in range(2):
      state, metrics = step(state, run.data, run.keys)
    results[choice] = jax.device_get((state.models, metrics))
  (params_a, metrics_a), (params_b, metrics_b) = results["xla"], results["ynnpack"]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5), params_a, params_b)
  np.testing.assert_allclose(metrics_a["loss"], metrics_b["loss"], rtol=1e-5)


def test_options_apply_only_on_cpu_and_name_the_key_when_wrong():
  assert cpu_kernels.compiler_options("xla", "gpu") is None
  assert cpu_kernels.compiler_options("xla", "tpu") is None
  assert cpu_kernels.compiler_options("ynnpack", "cpu") is None
  options = cpu_kernels.compiler_options("xla", "cpu")
  assert options is None or "INDIVIDUAL_CONVOLUTION" not in options[cpu_kernels.YNN_OPTION]
  with pytest.raises(ConfigError, match=r"config\.train\.cpu_conv_kernels='eigen'.*xla, ynnpack"):
    cpu_kernels.compiler_options("eigen", "cpu")


def test_unknown_value_in_a_config_fails_at_startup(make_config):
  with pytest.raises(ConfigError, match=r"train\.cpu_conv_kernels"):
    make_config("configs/vae.py:conv", *TINY, "train.cpu_conv_kernels=onednn")
