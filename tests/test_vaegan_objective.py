"""VAE-GAN losses (Larsen et al. 2016): values against a numpy transcription and the signs of every gradient."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.errors import ConfigError
from gen_jax.objectives.vaegan import feature_nll, vaegan_losses


def _inputs(seed=0, batch=6, feat_shape=(3, 4)):
  rng = np.random.default_rng(seed)
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  return dict(kl=f32(rng.uniform(0.1, 3.0, batch)),
              feat_real=f32(rng.normal(size=(batch,) + feat_shape)),
              feat_recon=f32(rng.normal(size=(batch,) + feat_shape)),
              logits_real=f32(rng.normal(1.0, 2.0, batch)),
              logits_recon=f32(rng.normal(-1.0, 2.0, batch)),
              logits_prior=f32(rng.normal(-2.0, 2.0, batch)))


def _np_losses(inp, gamma, sigma):
  """The formulas written out with D = sigmoid(logit), in float64."""
  a = {k: np.asarray(v, np.float64) for k, v in inp.items()}
  d = lambda l: 1.0 / (1.0 + np.exp(-l))
  batch = a["kl"].shape[0]
  diff = (a["feat_real"] - a["feat_recon"]).reshape(batch, -1)
  nll = np.sum(0.5 * diff ** 2 / sigma ** 2 + 0.5 * np.log(2 * np.pi * sigma ** 2), axis=1)
  prior, llike = a["kl"].mean(), nll.mean()
  gan_d = -np.mean(np.log(d(a["logits_real"])) + np.log(1 - d(a["logits_recon"])) + np.log(1 - d(a["logits_prior"])))
  gan_g = -np.mean(np.log(d(a["logits_recon"])) + np.log(d(a["logits_prior"])))
  return {"prior": prior, "llike": llike, "gan_d": gan_d, "gan_g": gan_g, "encoder": prior + llike,
          "decoder": gamma * llike + gan_g, "discriminator": gan_d}


@pytest.mark.parametrize("gamma,sigma", [(1.0, 1.0), (0.3, 0.5)])
def test_losses_match_numpy_transcription(gamma, sigma):
  inp = _inputs()
  out = jax.jit(lambda i: vaegan_losses(**i, gamma=gamma, feature_sigma=sigma))(inp)
  want = _np_losses(inp, gamma, sigma)
  assert set(out) == set(want)
  for k in want:
    np.testing.assert_allclose(out[k], want[k], rtol=1e-5, atol=1e-5, err_msg=k)
  assert float(out["prior"]) > 0


def test_gradient_signs():
  inp = _inputs(seed=1)
  logit_keys = ("logits_real", "logits_recon", "logits_prior")

  def loss(name, logits):
    return vaegan_losses(**{**inp, **dict(zip(logit_keys, logits))}, gamma=0.5)[name]

  logits = tuple(inp[k] for k in logit_keys)
  g_dec = jax.grad(lambda l: loss("decoder", l))(logits)
  g_dis = jax.grad(lambda l: loss("discriminator", l))(logits)
  g_enc = jax.grad(lambda l: loss("encoder", l))(logits)
  # The decoder wants D to call its reconstructions and its prior samples real.
  assert np.all(np.asarray(g_dec[1]) < 0) and np.all(np.asarray(g_dec[2]) < 0)
  np.testing.assert_array_equal(g_dec[0], 0.0)
  # The discriminator wants D(x) -> 1 and D(Dec(z)), D(Dec(z_p)) -> 0.
  assert np.all(np.asarray(g_dis[0]) < 0)
  assert np.all(np.asarray(g_dis[1]) > 0) and np.all(np.asarray(g_dis[2]) > 0)
  # No GAN term reaches the encoder.
  for g in g_enc:
    np.testing.assert_array_equal(g, 0.0)
  # KL: the encoder's prior term has gradient 1/B per example.
  g_kl = jax.grad(lambda kl: vaegan_losses(**{**inp, "kl": kl}, gamma=0.5)["encoder"])(inp["kl"])
  np.testing.assert_allclose(g_kl, 1.0 / 6)


def test_llike_is_minimal_at_equal_features_and_grows_with_squared_distance():
  inp = _inputs(seed=2, batch=4, feat_shape=(5,))
  real = inp["feat_real"]
  sigma = 0.7
  const = 5 * 0.5 * math.log(2 * math.pi * sigma ** 2)

  def llike(recon):
    return float(vaegan_losses(**{**inp, "feat_recon": recon}, gamma=1.0, feature_sigma=sigma)["llike"])

  np.testing.assert_allclose(llike(real), const, rtol=1e-6)
  direction = jnp.asarray(np.random.default_rng(3).normal(size=real.shape), jnp.float32)
  sq = float(jnp.mean(jnp.sum(direction ** 2, axis=1)))
  for t in (0.1, 0.5, 2.0):
    np.testing.assert_allclose(llike(real + t * direction) - const, t ** 2 * sq / (2 * sigma ** 2), rtol=1e-4)
  assert llike(real) < llike(real + 0.1 * direction) < llike(real + 0.5 * direction)
  # The gradient w.r.t. the reconstruction's features vanishes at the data's.
  g = jax.grad(lambda r: vaegan_losses(**{**inp, "feat_recon": r}, gamma=1.0)["decoder"])(real)
  np.testing.assert_allclose(g, 0.0, atol=1e-7)
  np.testing.assert_allclose(feature_nll(real, real, sigma), np.full(4, const), rtol=1e-6)


def test_stable_at_extreme_logits():
  inp = _inputs(seed=4)
  big = jnp.full((6,), 100.0, jnp.float32)
  perfect_d = vaegan_losses(**{**inp, "logits_real": big, "logits_recon": -big, "logits_prior": -big}, gamma=1.0)
  assert float(perfect_d["gan_d"]) < 1e-6
  np.testing.assert_allclose(perfect_d["gan_g"], 200.0, rtol=1e-6)
  fooled = vaegan_losses(**{**inp, "logits_real": big, "logits_recon": big, "logits_prior": big}, gamma=1.0)
  np.testing.assert_allclose(fooled["gan_d"], 200.0, rtol=1e-6)
  assert float(fooled["gan_g"]) < 1e-6
  assert all(np.isfinite(float(v)) for v in {**perfect_d, **fooled}.values())


def test_bad_settings_are_config_errors():
  inp = _inputs()
  with pytest.raises(ConfigError, match=r"config\.vaegan\.gamma"):
    vaegan_losses(**inp, gamma=-1.0)
  with pytest.raises(ConfigError, match=r"config\.vaegan\.feature_sigma"):
    vaegan_losses(**inp, gamma=1.0, feature_sigma=0.0)
