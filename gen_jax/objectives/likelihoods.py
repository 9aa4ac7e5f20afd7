"""The decoder's output distribution p(x | z) over images.

A likelihood turns the raw decoder output ``out`` [..., H, W, C * P] (P = ``params_per_channel``)
into a distribution over images x [..., H, W, C] in [0, 1]. Parameters are laid out in channel
blocks: ``out[..., :C]`` holds the first parameter of every channel, ``out[..., C:2C]`` the second.

All kinds are discrete: 'bernoulli' over {0, 1}, the others over the 256-level pixel grid k / 255
(bins of width 1/255, edge bins extended to +-inf, see ``distributions``). Hence ``log_prob`` is a
true log-probability (<= 0) and bits/dim = -log_prob / (D ln 2) is an honest code length.

Location parameterization (the 'gaussian', 'gaussian_fixed' and 'logistic' kinds): the location
is the raw decoder output, with no squashing. Because the edge bins absorb all mass below 0 and
above 1, a location outside [0, 1] is meaningful (it piles mass onto pure black / white pixels, as
in MNIST backgrounds), and an unsquashed location keeps its gradient there; decoders should end in
a plain linear layer. ``mean`` reports the location clipped to [0, 1] (not the exact expectation of
the discretized distribution). Learned log-scales are clipped to [LOG_SCALE_MIN, LOG_SCALE_MAX]: the
lower bound (s ~ 9e-4, i.e. +-2 scales over the half-bin 1/510) keeps masses off a degenerate spike.
"""
import dataclasses
import math
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from gen_jax.errors import ConfigError
from gen_jax.objectives import distributions

Array = jax.Array

NUM_BINS = 256
LOG_SCALE_MIN = -7.0
LOG_SCALE_MAX = 7.0
_EVENT_AXES = (-3, -2, -1)


@runtime_checkable
class Likelihood(Protocol):
  """Interface of an image likelihood p(x | out); see the module docstring for the layout of ``out``."""

  name: str
  params_per_channel: int
  is_discrete: bool
  levels: int   # the values a pixel takes: 2 ({0, 1}) or NUM_BINS (k / 255)

  def log_prob(self, x: Array, out: Array) -> Array:
    """log p(x | out) in nats, summed over the last 3 axes: [..., H, W, C] -> [...]."""
    ...

  def mean(self, out: Array) -> Array:
    """An image in [0, 1] of shape [..., H, W, C] summarising p(x | out)."""
    ...

  def sample(self, key: Array, out: Array) -> Array:
    """One exact sample x ~ p(x | out) of shape [..., H, W, C]."""
    ...


def _split(out: Array, params_per_channel: int, name: str) -> list[Array]:
  """Splits [..., C * P] into P arrays [..., C] (channel blocks)."""
  if out.shape[-1] % params_per_channel:
    raise ValueError(
        f"likelihood '{name}' needs the decoder to output C * {params_per_channel} channels; got {out.shape[-1]}")
  return jnp.split(out, params_per_channel, axis=-1)


def _to_grid(y: Array, num_bins: int) -> Array:
  """Rounds continuous values to the nearest grid point k / (num_bins - 1), k clipped to [0, num_bins - 1].

  If y has CDF F this is an exact sample of the discretized distribution (edge bins extended to +-inf).
  """
  levels = num_bins - 1
  return jnp.clip(jnp.round(y * levels), 0, levels) / levels


def _flat_event(a: Array) -> Array:
  """[..., H, W, C] -> [..., H*W*C]."""
  return a.reshape(a.shape[:-3] + (-1,))


def _clip_log_scale(log_scale: Array) -> Array:
  return jnp.clip(log_scale, LOG_SCALE_MIN, LOG_SCALE_MAX)


@dataclasses.dataclass(frozen=True)
class BernoulliLikelihood:
  """p(x | out) = prod_i Bernoulli(x_i; sigmoid(out_i)) for binary images; out = logits."""

  name: str = "bernoulli"
  levels: int = 2
  params_per_channel: int = 1
  is_discrete: bool = True

  def log_prob(self, x: Array, out: Array) -> Array:
    # On [..., H*W*C] rows: on [S, B, H, W, C] XLA:CPU gave the elementwise loops non-default layouts
    # with copies inside (slower; NOTES.md).
    return jnp.sum(distributions.bernoulli_log_prob(_flat_event(x), _flat_event(out)), axis=-1)

  def mean(self, out: Array) -> Array:
    return jax.nn.sigmoid(out)

  def sample(self, key: Array, out: Array) -> Array:
    return jax.random.bernoulli(key, jax.nn.sigmoid(out)).astype(out.dtype)


class _LocScaleLikelihood:
  """Shared parts of the per-pixel location/log-scale likelihoods: out = [mu | log s], log s clipped."""

  def _params(self, out: Array) -> tuple[Array, Array]:
    loc, log_scale = _split(out, 2, self.name)
    return loc, _clip_log_scale(log_scale)

  def log_prob(self, x: Array, out: Array) -> Array:
    loc, log_scale = self._params(out)
    return jnp.sum(self._bin_log_prob(x, loc, log_scale, self.num_bins), axis=_EVENT_AXES)

  def mean(self, out: Array) -> Array:
    return jnp.clip(self._params(out)[0], 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class DiscretizedGaussianLikelihood(_LocScaleLikelihood):
  """Discretized N(mu, s^2) per pixel; out = [mu | log s] (log s clipped to [LOG_SCALE_MIN, LOG_SCALE_MAX])."""

  name: str = "gaussian"
  levels: int = NUM_BINS
  params_per_channel: int = 2
  is_discrete: bool = True
  num_bins: int = NUM_BINS
  _bin_log_prob = staticmethod(distributions.discretized_gaussian_log_prob)

  def sample(self, key: Array, out: Array) -> Array:
    loc, log_scale = self._params(out)
    y = loc + jnp.exp(log_scale) * jax.random.normal(key, loc.shape, loc.dtype)
    return _to_grid(y, self.num_bins)


@dataclasses.dataclass(frozen=True)
class FixedGaussianLikelihood:
  """Discretized N(mu, sigma^2) per pixel with a fixed sigma; out = mu."""

  sigma: float = 0.1
  name: str = "gaussian_fixed"
  levels: int = NUM_BINS
  params_per_channel: int = 1
  is_discrete: bool = True
  num_bins: int = NUM_BINS

  def log_prob(self, x: Array, out: Array) -> Array:
    lp = distributions.discretized_gaussian_log_prob(x, out, math.log(self.sigma), self.num_bins)
    return jnp.sum(lp, axis=_EVENT_AXES)

  def mean(self, out: Array) -> Array:
    return jnp.clip(out, 0.0, 1.0)

  def sample(self, key: Array, out: Array) -> Array:
    y = out + self.sigma * jax.random.normal(key, out.shape, out.dtype)
    return _to_grid(y, self.num_bins)


@dataclasses.dataclass(frozen=True)
class DiscretizedLogisticLikelihood(_LocScaleLikelihood):
  """Discretized Logistic(mu, s) per pixel; out = [mu | log s] (log s clipped to [LOG_SCALE_MIN, LOG_SCALE_MAX])."""

  name: str = "logistic"
  levels: int = NUM_BINS
  params_per_channel: int = 2
  is_discrete: bool = True
  num_bins: int = NUM_BINS
  _bin_log_prob = staticmethod(distributions.discretized_logistic_log_prob)

  def sample(self, key: Array, out: Array) -> Array:
    loc, log_scale = self._params(out)
    tiny = jnp.finfo(loc.dtype).tiny
    u = jax.random.uniform(key, loc.shape, loc.dtype, minval=tiny, maxval=1.0)
    y = loc + jnp.exp(log_scale) * (jnp.log(u) - jnp.log1p(-u))
    return _to_grid(y, self.num_bins)


LIKELIHOODS = ("bernoulli", "gaussian", "gaussian_fixed", "logistic")


def make_likelihood(name: str, fixed_sigma: float = 0.1) -> Likelihood:
  """The likelihood called ``name`` (config.model.likelihood); ``fixed_sigma`` is used by 'gaussian_fixed'."""
  if name == "bernoulli":
    return BernoulliLikelihood()
  if name == "gaussian":
    return DiscretizedGaussianLikelihood()
  if name == "gaussian_fixed":
    if not fixed_sigma > 0:
      raise ConfigError(f"config.model.gaussian_sigma (the sigma of likelihood 'gaussian_fixed') must be > 0; "
                        f"got {fixed_sigma}")
    return FixedGaussianLikelihood(sigma=float(fixed_sigma))
  if name == "logistic":
    return DiscretizedLogisticLikelihood()
  raise ConfigError(
      f"unknown config.model.likelihood {name!r}; valid names: {', '.join(repr(n) for n in LIKELIHOODS)}")


def bits_per_dim(nats_per_example: Array | float, num_dims: int) -> Array | float:
  """Converts a negative log-likelihood in nats per example into bits per dimension: nll / (D ln 2).

  Pass the (positive) NLL, e.g. -elbo or -log p(x); num_dims D = H * W * C.
  """
  return nats_per_example / (num_dims * math.log(2.0))
