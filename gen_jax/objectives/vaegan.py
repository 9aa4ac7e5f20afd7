"""The VAE-GAN losses of Larsen, Sønderby, Larochelle & Winther 2016, "Autoencoding beyond pixels using a learned
similarity metric" (Algorithm 1), as pure functions of already-computed network outputs.

Model
-----
  z ~ q(z | x) = Enc(x),  x_tilde = Dec(z),  z_p ~ p(z) = N(0, I),  x_p = Dec(z_p),
  Dis(.) = sigmoid(logit(.)) the probability that its input is real, Dis_l(.) the features of its l-th layer.
The pixel likelihood of a VAE is replaced by a Gaussian on discriminator features:
  p(Dis_l(x) | z) = N(Dis_l(x) | Dis_l(x_tilde), sigma^2 I).

Losses (means over the batch; each one is MINIMISED by its own network)
------------------------------------------------------------------------
  L_prior  = KL(q(z | x) || p(z))
  L_llike  = -log N(Dis_l(x); Dis_l(x_tilde), sigma^2 I)
           = 1/(2 sigma^2) ||Dis_l(x) - Dis_l(x_tilde)||^2 + (F/2) log(2 pi sigma^2)      (F feature dimensions)
  gan_d    = -[log Dis(x) + log(1 - Dis(x_tilde)) + log(1 - Dis(x_p))]   = -L_GAN
  gan_g    = -[log Dis(x_tilde) + log Dis(x_p)]                          (non-saturating decoder term)
  encoder       = L_prior + L_llike
  decoder       = gamma L_llike + gan_g
  discriminator = gan_d

The constant (F/2) log(2 pi sigma^2) is KEPT, so 'llike' is a true negative log-density in nats (its minimum,
reached at Dis_l(x_tilde) = Dis_l(x), is that constant; it has no effect on any gradient).

The sign of L_GAN (a trap in the printed Algorithm 1)
-----------------------------------------------------
The paper defines L_GAN = log Dis(x) + log(1 - Dis(Gen(z))) (after Goodfellow et al. 2014), which the
discriminator should MAXIMISE (Dis(x) -> 1 on data) and the generator minimise. Algorithm 1 as printed updates
  theta_Dis <- theta_Dis - grad L_GAN          and          theta_Dec <- theta_Dec - grad (gamma L_llike - L_GAN),
i.e. gradient DESCENT on L_GAN for the discriminator and ascent for the decoder. Read literally with Dis = P(real),
that trains a discriminator to call data fake and a decoder to look fake; it is only self-consistent if Dis is read
as P(fake). We implement the convention of the paper's text and of Goodfellow et al.: Dis(.) = P(real),
the discriminator minimises gan_d = -L_GAN, and the decoder minimises gamma L_llike + gan_g, where gan_g replaces
the saturating log(1 - Dis(.)) terms of L_GAN by the non-saturating -log Dis(.) (Goodfellow et al. 2014, Sec. 3).
Tests pin these signs.

As in the paper, the encoder gets no GAN term and the discriminator is trained on gan_d alone (not on L_llike): the
caller must differentiate each entry only with respect to its own network's parameters.
"""
import math
import numbers

import jax
import jax.numpy as jnp

from gen_jax.errors import ConfigError

Array = jax.Array


def feature_nll(feat_real: Array, feat_recon: Array, feature_sigma: float = 1.0) -> Array:
  """-log N(feat_real; feat_recon, sigma^2 I) per example, summed over every non-batch axis: [B, ...] -> [B].

  = sum_f [ (feat_real_f - feat_recon_f)^2 / (2 sigma^2) + 1/2 log(2 pi sigma^2) ]   (the constant is kept).
  """
  diff = jnp.asarray(feat_real) - jnp.asarray(feat_recon)
  axes = tuple(range(1, diff.ndim))
  num_features = math.prod(diff.shape[1:])
  sigma2 = jnp.square(jnp.asarray(feature_sigma, diff.dtype))
  return (0.5 * jnp.sum(jnp.square(diff), axis=axes) / sigma2
          + 0.5 * num_features * jnp.log(2.0 * math.pi * sigma2))


def _check(gamma, feature_sigma) -> None:
  if isinstance(gamma, numbers.Real) and not gamma >= 0:
    raise ConfigError(f"config.vaegan.gamma must be >= 0 (the weight of L_llike in the decoder loss); got {gamma!r}")
  if isinstance(feature_sigma, numbers.Real) and not feature_sigma > 0:
    raise ConfigError(f"config.vaegan.feature_sigma must be > 0; got {feature_sigma!r}")


def vaegan_losses(*, kl: Array, feat_real: Array, feat_recon: Array, logits_real: Array, logits_recon: Array,
                  logits_prior: Array, gamma: float, feature_sigma: float = 1.0) -> dict[str, Array]:
  """The VAE-GAN losses (Larsen et al. 2016, Algorithm 1, with the sign convention of the module docstring).

  Args:
    kl: [B] KL(q(z | x) || p(z)) per example, nats.
    feat_real: [B, ...] Dis_l(x), the discriminator's l-th layer features of the data.
    feat_recon: [B, ...] Dis_l(Dec(z)), z ~ q(z | x).
    logits_real: [B] discriminator logits on x.
    logits_recon: [B] logits on Dec(z), z ~ q(z | x).
    logits_prior: [B] logits on Dec(z_p), z_p ~ N(0, I).
    gamma: weight of L_llike against the GAN term in the decoder loss.
    feature_sigma: standard deviation of the Gaussian on features.

  Returns scalars (means over the batch):
    'prior' = E[KL];  'llike' = E[-log N(Dis_l(x); Dis_l(x_tilde), sigma^2 I)];
    'gan_d' = E[softplus(-l_real) + softplus(l_recon) + softplus(l_prior)]   (= -L_GAN)
    'gan_g' = E[softplus(-l_recon) + softplus(-l_prior)]                     (non-saturating)
    'encoder' = prior + llike;  'decoder' = gamma * llike + gan_g;  'discriminator' = gan_d.
  """
  _check(gamma, feature_sigma)
  l_real = jnp.asarray(logits_real)
  l_recon = jnp.asarray(logits_recon)
  l_prior = jnp.asarray(logits_prior)
  prior = jnp.mean(jnp.asarray(kl))
  llike = jnp.mean(feature_nll(feat_real, feat_recon, feature_sigma))
  # -log D = softplus(-l), -log(1 - D) = softplus(l), with D = sigmoid(l).
  gan_d = jnp.mean(jax.nn.softplus(-l_real) + jax.nn.softplus(l_recon) + jax.nn.softplus(l_prior))
  gan_g = jnp.mean(jax.nn.softplus(-l_recon) + jax.nn.softplus(-l_prior))
  return {
      "prior": prior,
      "llike": llike,
      "gan_d": gan_d,
      "gan_g": gan_g,
      "encoder": prior + llike,
      "decoder": gamma * llike + gan_g,
      "discriminator": gan_d,
  }
