"""The VAE-GAN compares discriminator features at a block with a non-linear layer between them and D's logit.

At the last block the logit is affine in the compared features, so the encoder and decoder, which minimise the
feature distance of reconstructions, also make D's logits on reconstructions equal to those on data: D sat at
chance (d_real = d_recon) in MNIST runs (NOTES.md, issue 19 part 3)."""
from __future__ import annotations

import jax
import pytest

from gen_jax.nets.gan import build_gan


def _logit_gap_and_feature_head(config, shape):
  _, disc = build_gan(config.model, shape, 10)
  k_init, k_x = jax.random.split(jax.random.key(0))
  x = jax.random.uniform(k_x, (2,) + shape, minval=-1.0, maxval=1.0)
  variables = disc.init(k_init, x, None, train=False)
  logits, features = disc.apply(variables, x, None, train=False)
  dense = variables["params"]["out"]["dense"]["kernel"][:, 0]
  delta = (features[0] - features[1]).reshape(-1)
  affine = float(delta @ dense) if delta.shape == dense.shape else None
  return float(logits[0] - logits[1]), affine, features.shape


@pytest.mark.parametrize("variant,shape,side", [("", (28, 28, 1), 14), ("cifar10", (32, 32, 3), 8)])
def test_default_vaegan_features_are_not_linear_in_the_logit(make_config, variant, shape, side):
  config = make_config(f"configs/vaegan.py:{variant}" if variant else "configs/vaegan.py",
                       "model.d_width=8", "model.g_width=8")
  assert config.model.feature_layer == -2
  gap, affine, feature_shape = _logit_gap_and_feature_head(config, shape)
  assert affine is None                       # a conv block sits between Dis_l and the logit
  assert feature_shape[1:3] == (side, side)   # 28x28: block 0 of 2 (14x14); 32x32: block 1 of 3 (8x8)

  # The old choice, the last block: the logit difference of two inputs is the dense head on their feature
  # difference, so equal features force equal logits.
  config.model.feature_layer = -1
  gap, affine, _ = _logit_gap_and_feature_head(config, shape)
  assert affine is not None and gap == pytest.approx(affine, rel=1e-4, abs=1e-5)
  assert abs(gap) > 1e-4
