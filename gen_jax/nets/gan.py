"""``build_gan``: the (generator, discriminator) pair named by ``config.model``.

Fields read: arch ('mlp' for 1-D toy data, 'dcgan' or 'resnet' for images), g_width, d_width (image archs;
where absent or None: 64 for dcgan, 128 for resnet), hidden and activation (mlp), upsample, spectral_norm (D;
where absent: False except for resnet), conditional, feature_layer, d_layout (resnet: 'halve' (default) or
'sngan', the CIFAR-10 discriminator of Miyato et al.). The choices of arch, activation,
upsample and d_layout are checked once, at start-up, by `gen_jax.config.validate_config`; what depends on the data (its
shape, its labels) is checked here.
"""
from typing import Any, Optional, Sequence

import flax.linen as nn
import numpy as np

from gen_jax.errors import ConfigError
from gen_jax.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gen_jax.nets.gan_layers import check_feature_layer, num_stages
from gen_jax.nets.layers import DEFAULT_UPSAMPLE, positive_int
from gen_jax.nets.resnet_gan import ResNetDiscriminator, ResNetGenerator, d_block_halves
from gen_jax.nets.toy import ToyDiscriminator, ToyGenerator

GAN_ARCHS = ("mlp", "dcgan", "resnet")
IMAGE_ARCHS = {"dcgan": (DCGANGenerator, DCGANDiscriminator, 64, False),
               "resnet": (ResNetGenerator, ResNetDiscriminator, 128, True)}  # (G, D, default width, default SN)


def _get(model_cfg: Any, key: str, default: Any) -> Any:
  """``model_cfg.get(key, default)``, also using ``default`` where the key is present but None."""
  value = model_cfg.get(key, default)
  return default if value is None else value


def _positive_int(value: Any, key: str) -> int:
  return positive_int(value, f"config.model.{key}")


def _bool(value: Any, key: str) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise ConfigError(f"config.model.{key} must be True or False, got {value!r}")
  return bool(value)


def build_gan(model_cfg: Any, data_shape: Sequence[int], num_classes: Optional[int]
              ) -> tuple[nn.Module, nn.Module]:
  """(generator, discriminator) for data of shape ``data_shape`` ((D,) toy or (H, W, C) images).

  ``num_classes`` is the dataset's label count (None if unlabelled), used only when
  ``model_cfg.conditional``.
  """
  shape = tuple(int(s) for s in data_shape)
  arch = model_cfg.arch
  classes = None
  if _bool(_get(model_cfg, "conditional", False), "conditional"):
    if num_classes is None:
      raise ConfigError("config.model.conditional=True but the dataset has no labels; set it to False")
    classes = _positive_int(num_classes, "conditional (dataset num_classes)")
  feature_layer = _get(model_cfg, "feature_layer", -1)

  if arch == "mlp":
    if len(shape) != 1:
      raise ConfigError(f"config.model.arch='mlp' is for 1-D (toy) data, but the data shape is {shape}; "
                        f"use 'dcgan' or 'resnet' for images")
    try:
      hidden = tuple(_positive_int(h, "hidden") for h in _get(model_cfg, "hidden", (128, 128, 128)))
    except TypeError:
      raise ConfigError(f"config.model.hidden must be a sequence of positive ints, "
                        f"got {model_cfg.get('hidden')!r}") from None
    if not hidden:
      raise ConfigError("config.model.hidden must list at least one layer width for arch='mlp'")
    act = _get(model_cfg, "activation", "relu")
    check_feature_layer(feature_layer, len(hidden))
    sn = _bool(_get(model_cfg, "spectral_norm", False), "spectral_norm")
    return (ToyGenerator(hidden, shape[0], act, classes),
            ToyDiscriminator(hidden, act, sn, classes, feature_layer))

  if len(shape) != 3:
    raise ConfigError(f"config.model.arch={arch!r} needs image data [H, W, C], but the data shape is {shape}; "
                      f"use arch 'mlp' for 2-D toy data")
  gen_cls, disc_cls, default_width, default_sn = IMAGE_ARCHS[arch]
  layout = _get(model_cfg, "d_layout", "halve")
  if layout != "halve" and arch != "resnet":
    raise ConfigError(f"config.model.d_layout={layout!r} is a ResNet discriminator layout, but model.arch={arch!r}; "
                      f"set model.arch='resnet' or model.d_layout='halve'")
  blocks = len(d_block_halves(layout, shape[0], shape[1])) if arch == "resnet" else num_stages(shape[0], shape[1])
  check_feature_layer(feature_layer, blocks)
  g_width = _positive_int(_get(model_cfg, "g_width", default_width), "g_width")
  d_width = _positive_int(_get(model_cfg, "d_width", default_width), "d_width")
  upsample = _get(model_cfg, "upsample", DEFAULT_UPSAMPLE)
  sn = _bool(_get(model_cfg, "spectral_norm", default_sn), "spectral_norm")
  extra = {"layout": layout} if arch == "resnet" else {}
  return (gen_cls(shape, g_width, upsample, classes),
          disc_cls(d_width, sn, classes, feature_layer, **extra))
