"""Mode-collapse metrics: 2-D Gaussian-mixture toy data (the ring of 8, the 5 x 5 grid) and Stacked MNIST.

The mixture centres and standard deviations come from the data layer (``gen_jax/data/synthetic.py``, the single
source of truth; re-exported here), so the evaluation scores against exactly the centres the data was drawn from.

Metrics (Metz et al. 2017; Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN)
-----------------------------------------------------------------------------------
Each sample is assigned to its nearest centre c_k (Euclidean). It is HIGH QUALITY when ||x - c_k|| <= num_std * std
(3 standard deviations by convention). Then
  high_quality_fraction = #high-quality samples / N
  counts_k              = #high-quality samples assigned to mode k
  modes_covered         = #{k : counts_k >= min_count}
  kl_to_uniform         = KL(p || U) = sum_k p_k log(M p_k),  p_k ~ counts_k + smoothing (see below)
with M modes and N samples. A mode counts as covered when it gets at least ``min_count`` high-quality samples;
the default is min_count = max(1, round(0.1 * N / M)), 10% of the share a uniform generator would give each mode,
so that a stray sample or two does not make a mode "covered" (with N = 2500 and M = 25 the default asks for 10);
pass min_count=1 for the looser "at least one high-quality sample" criterion.

Stacked MNIST (Metz et al. 2017; PacGAN, VEEGAN): a sample [H, W, 3] has the mode 100 d_R + 10 d_G + d_B, the digits
a classifier reads in its red, green and blue channels (the order of `StackedMnistSampler`'s labels), one of 1000.
  modes_covered = #{m : at least one sample has mode m}
  kl_to_uniform = KL(q || U) = sum_m q_m log(1000 q_m),  q the empirical mode distribution, 0 log 0 = 0 (exact,
                  no smoothing; log 1000 under total collapse, 0 for a perfectly even spread).
"""
import math

import numpy as np

from gen_jax.data.synthetic import GRID_STD, RING_STD, grid_centers, ring_centers  # noqa: F401 (re-export)
from gen_jax.errors import ConfigError
from gen_jax.eval.batching import map_batches

# Added to every mode's probability (then renormalised) before the KL, so that log(0) never occurs; it changes the
# KL by O(M * KL_SMOOTHING), far below anything reported.
KL_SMOOTHING = 1e-10


def default_min_count(num_samples: int, num_modes: int) -> int:
  """max(1, round(0.1 * N / M)): 10% of the uniform share of high-quality samples per mode."""
  return max(1, int(round(0.1 * num_samples / num_modes)))


def mixture_mode_stats(samples, centers, std: float, num_std: float = 3.0, min_count: int | None = None) -> dict:
  """Mode coverage and sample quality of 2-D samples [N, 2] against mixture centres [M, 2] of a common ``std``.

  Returns Python numbers: 'modes_covered' (int), 'high_quality_fraction' (float), 'counts' (list of M ints),
  'kl_to_uniform' (float, nats), 'num_modes', 'num_samples', 'num_std', 'min_count'. See the module docstring.
  Non-finite samples are never high quality. With no high-quality sample at all 'kl_to_uniform' is log M, its
  value under total collapse, so that a generator producing nothing near any mode never scores better.
  """
  samples = np.asarray(samples, np.float64)
  centers = np.asarray(centers, np.float64)
  if samples.ndim != 2 or samples.shape[1] != 2 or centers.ndim != 2 or centers.shape[1] != 2:
    raise ValueError(f"mixture_mode_stats needs samples [N, 2] and centers [M, 2]; got {samples.shape} and "
                     f"{centers.shape}")
  num_samples, num_modes = samples.shape[0], centers.shape[0]
  if num_samples < 1 or num_modes < 1:
    raise ValueError(f"mixture_mode_stats needs at least one sample and one centre; got N={num_samples}, "
                     f"M={num_modes}")
  if not std > 0:
    raise ConfigError(f"mixture_mode_stats: std (the mixture components' standard deviation) must be > 0; got {std!r}")
  if not num_std > 0:
    raise ConfigError(f"mixture_mode_stats: num_std must be > 0; got {num_std!r}")
  if min_count is None:
    min_count = default_min_count(num_samples, num_modes)
  elif int(min_count) != min_count or min_count < 1:
    raise ConfigError(f"mixture_mode_stats: min_count must be an integer >= 1 or None; got {min_count!r}")
  min_count = int(min_count)

  d2 = np.sum(np.square(samples[:, None, :] - centers[None, :, :]), axis=-1)  # [N, M]
  d2 = np.where(np.isfinite(d2), d2, np.inf)
  nearest = np.argmin(d2, axis=1)
  dist = np.sqrt(d2[np.arange(num_samples), nearest])
  high_quality = dist <= num_std * std
  counts = np.bincount(nearest[high_quality], minlength=num_modes)
  num_hq = int(counts.sum())

  if num_hq == 0:
    kl = math.log(num_modes)
  else:
    p = counts / num_hq + KL_SMOOTHING
    p = p / p.sum()
    kl = float(np.sum(p * np.log(p * num_modes)))
  return {
      "modes_covered": int(np.sum(counts >= min_count)),
      "high_quality_fraction": num_hq / num_samples,
      "counts": [int(c) for c in counts],
      "kl_to_uniform": max(kl, 0.0),
      "num_modes": int(num_modes),
      "num_samples": int(num_samples),
      "num_std": float(num_std),
      "min_count": min_count,
  }


STACKED_MNIST_MODES = 1000
STACKED_MNIST_MODE_RULE = "100 * digit(R) + 10 * digit(G) + digit(B), digits by the MNIST classifier"


def stacked_mnist_modes(samples, predict_digits_fn, batch_size: int | None = None) -> np.ndarray:
  """The mode 100 d_R + 10 d_G + d_B of each sample [N, H, W, 3]; predict_digits_fn(images [n, H, W, 1]) -> digits
  [n]. With ``batch_size`` the classifier sees at most that many images at a time."""
  samples = np.asarray(samples)
  if samples.ndim != 4 or samples.shape[-1] != 3 or samples.shape[0] < 1:
    raise ValueError(f"Stacked MNIST samples must be [N >= 1, H, W, 3] (R, G, B digits); got {samples.shape}")
  modes = np.zeros(samples.shape[0], np.int64)
  for channel, weight in enumerate((100, 10, 1)):
    images = samples[..., channel:channel + 1]
    if batch_size is None:
      digits = np.asarray(predict_digits_fn(images))
    else:
      digits = np.asarray(map_batches(lambda x: np.asarray(predict_digits_fn(x)), images, batch_size=batch_size))
    digits = digits.reshape(-1)
    valid = (digits >= 0) & (digits <= 9) & (digits == np.round(digits))
    if digits.shape[0] != samples.shape[0] or not np.all(valid):
      raise ValueError(f"predict_digits_fn must return one integer digit in 0..9 per image; got shape {digits.shape}, "
                       f"values in [{digits.min()}, {digits.max()}]")
    modes += weight * digits.astype(np.int64)
  return modes


def stacked_mnist_mode_stats(samples, predict_digits_fn, batch_size: int | None = None) -> dict:
  """Mode coverage of Stacked MNIST samples [N, H, W, 3] in [0, 1] (see the module docstring).

  Returns Python numbers: 'modes_covered' (int, modes with >= 1 sample), 'kl_to_uniform' (nats),
  'num_modes' (1000), 'num_samples', 'min_count' (1).
  """
  modes = stacked_mnist_modes(samples, predict_digits_fn, batch_size)
  counts = np.bincount(modes, minlength=STACKED_MNIST_MODES)
  q = counts[counts > 0] / modes.shape[0]
  return {
      "modes_covered": int(np.sum(counts > 0)),
      "kl_to_uniform": max(float(np.sum(q * np.log(q * STACKED_MNIST_MODES))), 0.0),
      "num_modes": STACKED_MNIST_MODES,
      "num_samples": int(modes.shape[0]),
      "min_count": 1,
  }
