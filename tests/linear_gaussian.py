"""Test models with closed-form answers, shared by the VAE objective and likelihood-evaluation tests."""
import dataclasses
import math

import jax.numpy as jnp
import numpy as np
from scipy import stats

from gen_jax.objectives import distributions as D


@dataclasses.dataclass(frozen=True)
class ContinuousGaussian:
  """A continuous N(out, sigma^2 I) 'likelihood' over [..., H, W, C] (same interface as gen_jax's likelihoods)."""

  sigma: float
  name: str = "continuous_gaussian"
  params_per_channel: int = 1
  is_discrete: bool = False

  def log_prob(self, x, out):
    return jnp.sum(D.gaussian_log_prob(x, out, 2 * math.log(self.sigma)), axis=(-3, -2, -1))

  def mean(self, out):
    return out


class LinearGaussian:
  """p(z) = N(0, I_L), p(x | z) = N(W z + b, s^2 I_D), marginal N(b, W W^T + s^2 I); images [B, 1, 1, D].

  W has orthogonal columns, so the true posterior N(S W^T (x - b) / s^2, S), S = (I + W^T W / s^2)^-1, is
  diagonal; encode_fn returns it shifted by (mean_shift, logvar_shift).
  """

  def __init__(self, seed=0, dim=4, latents=2, sigma=0.5, mean_shift=0.0, logvar_shift=0.0):
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((dim, latents)))
    self.w = u * np.linspace(1.5, 0.8, latents)
    self.b = rng.uniform(0.3, 0.7, dim)
    self.sigma, self.dim, self.latents = sigma, dim, latents
    self.post_var = 1.0 / (1.0 + np.sum(self.w ** 2, axis=0) / sigma ** 2)
    self.mean_shift, self.logvar_shift = mean_shift, logvar_shift
    self.likelihood = ContinuousGaussian(sigma)
    self.encode_calls = 0

  def encode_fn(self, x, y):
    self.encode_calls += 1
    xf = x.reshape(x.shape[0], self.dim)
    mean = (xf - self.b) @ self.w * (self.post_var / self.sigma ** 2) + self.mean_shift
    logvar = jnp.broadcast_to(jnp.log(self.post_var) + self.logvar_shift, mean.shape)
    return mean.astype(jnp.float32), logvar.astype(jnp.float32)

  def decode_fn(self, z, y):
    return (z @ self.w.T + self.b).astype(jnp.float32).reshape(z.shape[0], 1, 1, self.dim)

  def sample_x(self, n, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, self.latents))
    x = z @ self.w.T + self.b + self.sigma * rng.standard_normal((n, self.dim))
    return x.reshape(n, 1, 1, self.dim).astype(np.float32)

  def log_marginal(self, x):
    cov = self.w @ self.w.T + self.sigma ** 2 * np.eye(self.dim)
    return stats.multivariate_normal(self.b, cov).logpdf(np.asarray(x, np.float64).reshape(-1, self.dim))
