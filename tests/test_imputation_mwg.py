"""Conditional sampling by Metropolis-within-Gibbs (eval.imputation_chain='mwg') and by a pCN random walk ('pcn'):
both target p(x_miss | x_obs) even with a wrong encoder, where the pseudo-Gibbs chain does not; the key's
validation. (The VAE-GAN's matched EMA encoder/decoder pair, which the chains use, is tested in test_ema.py.)"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import config as config_lib
from gen_jax.errors import ConfigError
from gen_jax.eval.groups import imputation as imp
from gen_jax.models.family import LikelihoodModel
from linear_gaussian import LinearGaussian

MISSING = np.array([False, False, False, True, True, True])   # 6 pixels in a row, the last 3 missing


class _LinearGaussianModel:
  """LinearGaussian's p(z) p(x | z) and (shifted) encoder behind the imputation interface, images [N, 1, 6, 1]."""
  has_encoder, has_likelihood, conditional, is_image, binarization = True, True, False, True, None
  family_name, params_kind, num_classes, models = "linear_gaussian", "raw", None, None

  def __init__(self, lg: LinearGaussian):
    self.lg, self.latent_dim, self.data_shape, self.family = lg, lg.latents, (1, lg.dim, 1), self

  def encode(self, x, labels=None):
    return self.lg.encode_fn(x.reshape(x.shape[0], 1, 1, -1), labels)

  def decode(self, z, labels=None):
    return self.lg.decode_fn(z, labels).reshape(z.shape[0], 1, -1, 1)

  def likelihood_model(self, models):
    return LikelihoodModel(self.encode, self.decode, self.lg.likelihood, {})

  def model_input(self, x, key=None):
    return jnp.asarray(x, jnp.float32)


def _exact_conditional_mean(lg: LinearGaussian, x: np.ndarray, missing: np.ndarray = MISSING) -> np.ndarray:
  """E[x_miss | x_obs] of the marginal N(b, W W^T + s^2 I)."""
  cov = lg.w @ lg.w.T + lg.sigma ** 2 * np.eye(lg.dim)
  o, m = ~missing, missing
  x = x.reshape(-1, lg.dim).astype(np.float64)
  return lg.b[m] + (cov[np.ix_(m, o)] @ np.linalg.solve(cov[np.ix_(o, o)], (x[:, o] - lg.b[o]).T)).T


def test_mwg_targets_the_exact_conditional_with_a_wrong_encoder_and_pseudo_gibbs_does_not():
  # The encoder's posterior mean is shifted by 0.3 (about one posterior std) and its variance widened by e.
  lg = LinearGaussian(seed=0, dim=6, latents=2, sigma=0.5, mean_shift=0.3, logvar_shift=1.0)
  model = _LinearGaussianModel(lg)
  x = lg.sample_x(4, seed=1).reshape(4, 1, 6, 1)
  chains = 64   # independent chains per image; each averages its decoder means over its last 1000 steps
  xr = np.repeat(x, chains, axis=0)
  observed = np.broadcast_to(~MISSING[None, None, :, None], xr.shape)
  want = _exact_conditional_mean(lg, x)
  got, accept = {}, {}
  for chain in imp.CHAINS:
    out, accept[chain] = imp.impute_conditional_sampling(model, xr, observed, jax.random.key(0), 1200,
                                                         average_last=1000, batch_size=len(xr), chain=chain,
                                                         return_acceptance=True)
    np.testing.assert_array_equal(out[..., :3, :], xr[..., :3, :])   # observed pixels kept
    got[chain] = out.reshape(4, chains, 6)[:, :, MISSING].mean(axis=1)
  # MWG: within a few Monte Carlo standard errors (~0.012) of the closed form; pseudo-Gibbs amplifies the
  # encoder's bias (its error measured > 1).
  assert np.abs(got["mwg"] - want).max() < 0.08
  assert np.abs(got["pcn"] - want).max() < 0.08   # the random walk never asks the encoder after its first draw
  assert np.abs(got["pseudo_gibbs"] - want).max() > 0.5
  assert 0.2 < accept["mwg"].mean() < 0.9 and np.all(accept["pseudo_gibbs"] == 1.0)
  assert 0.15 < accept["pcn"].mean() < 0.9          # (2 latents: beta reaches its cap 1, a prior proposal)


def test_pcn_moves_where_the_encoder_proposals_are_refused():
  """A sharp likelihood on many observed pixels and a wrong encoder (the CIFAR-10 situation, where MWG accepts
  almost nothing): MWG stays near its biased first draw, the pCN walk adapts its step to an acceptance near 0.25 and
  imputes nearly as well as the exact conditional mean."""
  lg = LinearGaussian(seed=0, dim=48, latents=8, sigma=0.05, mean_shift=0.3, logvar_shift=1.0)
  model = _LinearGaussianModel(lg)
  x = lg.sample_x(16, seed=1).reshape(16, 1, 48, 1)
  chains = 8   # per image; their mean imputation is compared with the exact conditional mean's error
  xr = np.repeat(x, chains, axis=0)
  missing = np.arange(48) >= 24
  observed = np.broadcast_to(~missing[None, None, :, None], xr.shape)
  truth = x.reshape(16, 48)[:, missing]
  exact = np.mean((_exact_conditional_mean(lg, x, missing) - truth) ** 2)
  mse, accept = {}, {}
  for chain in ("mwg", "pcn"):
    out, accept[chain] = imp.impute_conditional_sampling(model, xr, observed, jax.random.key(0), 400,
                                                         batch_size=len(xr), chain=chain, return_acceptance=True)
    mse[chain] = np.mean((out.reshape(16, chains, 48)[:, :, missing].mean(axis=1) - truth) ** 2)
  assert accept["mwg"].mean() < 0.05 and 0.15 < accept["pcn"].mean() < 0.35, accept   # measured 0.009, 0.23
  assert mse["pcn"] < 1.15 * exact < 0.25 * mse["mwg"], (mse, exact)   # measured 0.00342, 0.00338, 0.081


def test_mwg_with_one_step_is_the_first_draw_and_reports_no_acceptance():
  lg = LinearGaussian(seed=0, dim=6, latents=2, sigma=0.5)
  model = _LinearGaussianModel(lg)
  x = lg.sample_x(3, seed=2).reshape(3, 1, 6, 1)
  observed = np.broadcast_to(~MISSING[None, None, :, None], x.shape)
  outs = {c: imp.impute_conditional_sampling(model, x, observed, jax.random.key(5), 1, chain=c, return_acceptance=True)
          for c in imp.CHAINS}
  np.testing.assert_allclose(outs["mwg"][0], outs["pseudo_gibbs"][0], rtol=1e-6)   # the same start, always taken
  np.testing.assert_allclose(outs["pcn"][0], outs["mwg"][0], rtol=1e-6)
  assert np.all(np.isnan(outs["mwg"][1])) and np.all(np.isnan(outs["pcn"][1]))


def test_the_chain_key_is_validated():
  config = config_lib.default_config("vae")
  config.eval.imputation_chain = "gibbs"
  with pytest.raises(ConfigError, match=r"config\.eval\.imputation_chain='gibbs' is not valid; choose one of mwg"):
    config_lib.validate_config(config)
  config.eval.imputation_chain = "pseudo_gibbs"
  config_lib.validate_config(config)
  model = _LinearGaussianModel(LinearGaussian(dim=6))
  x = np.zeros((2, 1, 6, 1), np.float32)
  with pytest.raises(ConfigError, match="imputation_chain='gibbs'"):
    imp.impute_conditional_sampling(model, x, np.ones((2, 1, 6, 1), bool), jax.random.key(0), 2, chain="gibbs")
