"""The VAE module (encoder + decoder, optionally label-conditional) and ``build_vae`` from a config."""
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

from gen_jax.errors import ConfigError
from gen_jax.nets.conv import ConvDecoder, ConvEncoder, decoder_base_shape
from gen_jax.nets.layers import positive_int
from gen_jax.nets.mlp import MLPDecoder, MLPEncoder

LOGVAR_MIN = -30.0
LOGVAR_MAX = 20.0
ARCHS = ("mlp", "conv")


class VAE(nn.Module):
  """Deterministic encoder/decoder pair; sampling z happens outside (in the objective).

  ``encoder(x, y_onehot) -> (mean, logvar)`` and ``decoder(z, y_onehot) -> [N,H,W,C*P]``.
  When ``num_classes`` is set the model is conditional and ``y`` (int [N]) is required; otherwise
  ``y`` is ignored, so callers may always pass the batch labels.
  """
  encoder: nn.Module
  decoder: nn.Module
  num_classes: Optional[int] = None

  @property
  def latent_dim(self) -> int:
    """Size of z."""
    return self.encoder.latent_dim

  def _onehot(self, y: Optional[jax.Array]) -> Optional[jax.Array]:
    if self.num_classes is None:
      return None
    if y is None:
      raise ValueError(f"this VAE is conditional on {self.num_classes} classes: pass labels y (int [N])")
    return jax.nn.one_hot(y, self.num_classes, dtype=jnp.float32)

  def encode(self, x: jax.Array, y: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array]:
    """x [N,H,W,C] -> (mean, logvar) [N, latent_dim]; logvar clipped to [LOGVAR_MIN, LOGVAR_MAX]."""
    mean, logvar = self.encoder(x, self._onehot(y))
    return mean, jnp.clip(logvar, LOGVAR_MIN, LOGVAR_MAX)

  def decode(self, z: jax.Array, y: Optional[jax.Array] = None) -> jax.Array:
    """z [N, latent_dim] -> decoder output [N,H,W,C*P] (reshape to [N,H,W,C,P] for per-channel params)."""
    return self.decoder(z, self._onehot(y))

  def __call__(self, x: jax.Array, y: Optional[jax.Array] = None) -> jax.Array:
    """decode(mean of encode(x)); touches every parameter, so ``init(key, x, y)`` creates them all."""
    return self.decode(self.encode(x, y)[0], y)




def _required(model_cfg: Any, key: str) -> Any:
  value = model_cfg.get(key, None)
  if value is None:
    raise ConfigError(f"config.model.{key} is required for arch={model_cfg.get('arch', None)!r}")
  return value


def _int_tuple(value: Any, key: str) -> tuple[int, ...]:
  try:
    items = tuple(value)
  except TypeError:
    raise ConfigError(f"config.model.{key} must be a sequence of positive ints, got {value!r}") from None
  return tuple(positive_int(v, f"each entry of config.model.{key}") for v in items)


def build_vae(model_cfg: Any, image_shape: Sequence[int], num_classes: Optional[int],
              params_per_channel: int = 1) -> VAE:
  """Build a VAE from ``config.model`` (arch, hidden, features, latent_dim, activation, upsample, conditional).

  ``image_shape`` is (H, W, C); decoder output channels are C * params_per_channel. ``num_classes`` is
  the dataset's label count (None if unlabelled); it is used only when ``model_cfg.conditional``.
  """
  h, w, c = (int(s) for s in image_shape)
  out_shape = (h, w, c * positive_int(params_per_channel, "params_per_channel"))
  latent_dim = int(model_cfg.latent_dim)
  act = model_cfg.activation
  classes = None
  if model_cfg.conditional:
    if num_classes is None:
      raise ConfigError("config.model.conditional=True but the dataset has no labels; set it to False")
    classes = positive_int(num_classes, "num_classes")
  arch = model_cfg.arch   # one of ARCHS: config.validate_config checks arch, activation, upsample, latent_dim
  if arch == "mlp":
    hidden = _int_tuple(_required(model_cfg, "hidden"), "hidden")
    encoder = MLPEncoder(hidden=hidden, latent_dim=latent_dim, activation=act)
    decoder = MLPDecoder(hidden=hidden[::-1], out_shape=out_shape, activation=act)
  elif arch == "conv":
    features = _int_tuple(_required(model_cfg, "features"), "features")
    decoder_base_shape(out_shape, len(features))  # Fail now, not at init, on sizes it cannot produce.
    method = model_cfg.upsample
    kernel_size = positive_int(model_cfg.get("kernel_size", 3), "config.model.kernel_size")
    encoder = ConvEncoder(features=features, latent_dim=latent_dim, activation=act,
                          dense=model_cfg.get("dense", None), kernel_size=kernel_size)
    decoder = ConvDecoder(features=features[::-1], out_shape=out_shape, activation=act,
                          upsample_method=method, kernel_size=kernel_size)
  else:
    raise ValueError(f"build_vae: arch {arch!r} is not one of {ARCHS} (config.validate_config checks it)")
  return VAE(encoder=encoder, decoder=decoder, num_classes=classes)
