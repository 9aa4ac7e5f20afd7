"""The five benchmark architectures and their training updates in PyTorch: the speed reference.

Run in its own process (`python -m gen_jax.bench.torch_reference --config=SPEC [--set K=V] [--mode=compile]`,
see `main`), never inside the JAX benchmark process: each library keeps its own threads and OpenMP settings,
and PyTorch runs at its library defaults unless the user set them (gen_jax/bench/torch_process.py builds the
child's environment). `--mode=compile` wraps every network in `torch.compile` (inductor on CPU) and keeps the
optimizers eager, as a PyTorch user would write it.

Each model mirrors the gen_jax network layer for layer (gen_jax/nets): widths, kernel sizes, TF-style 'SAME'
padding (stride-2 3x3 convs pad 0 before and 1 after, as XLA does), nearest-neighbour upsampling followed by
a 3x3 conv (config.model.upsample='nearest'), batch norm with momentum 0.9 (0.1 in PyTorch terms) and
eps 1e-5, spectral normalization with one power iteration per call, the same losses, Adam with the config's
learning rates, betas and eps, one optimizer step per network per update (n_critic discriminator steps per
generator step for the resnet config), and the EMA of the generator. Batches are drawn like gen_jax's
on-device sampler: a per-epoch permutation of the uint8 training set held in memory, pixels / 255, a fresh
Bernoulli draw per batch for dynamically binarized MNIST. Not mirrored (cheap in both): gen_jax's logged
metrics (gradient and parameter norms, sample diversity).

Layout: PyTorch's default NCHW for convolutions (what an eager user writes); the flattening order before
dense layers therefore differs from gen_jax's NHWC, which changes no shape or FLOP count.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Callable

import numpy as np

try:
  import torch
  import torch.nn.functional as F
  from torch import nn
  from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm
except ImportError:  # torch is optional: requirements-bench.txt
  torch = F = nn = torch_spectral_norm = None

TORCH_MISSING = ("PyTorch is not installed, so the PyTorch-eager reference is skipped; install it with "
                 "`pip install -r requirements-bench.txt` (CPU wheel)")


def available() -> bool:
  return torch is not None


def _require_torch() -> None:
  if torch is None:
    raise ImportError(TORCH_MISSING)


def _activation(name: str) -> Callable:
  return {"tanh": torch.tanh, "relu": F.relu, "leaky_relu": lambda x: F.leaky_relu(x, 0.2)}[name]


def same_pad(kernel: int, stride: int, size: int) -> tuple[int, int]:
  """TF/XLA 'SAME' padding (before, after) of one spatial axis."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


class SameConv(nn.Module if torch else object):
  """Conv2d with XLA 'SAME' padding (asymmetric where XLA's is), optionally spectrally normalized."""

  def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, bias: bool = True, sn: bool = False):
    super().__init__()
    self.kernel, self.stride = kernel, stride
    conv = nn.Conv2d(cin, cout, kernel, stride, padding=0, bias=bias)
    self.conv = torch_spectral_norm(conv) if sn else conv
    self._pads: dict[tuple[int, int], Any] = {}

  def forward(self, x):
    h, w = x.shape[-2:]
    pad = self._pads.get((h, w))
    if pad is None:
      (top, bottom), (left, right) = same_pad(self.kernel, self.stride, h), same_pad(self.kernel, self.stride, w)
      pad = self._pads[(h, w)] = (top, bottom, left, right)
    top, bottom, left, right = pad
    if top == bottom and left == right:
      return F.conv2d(x, self.conv.weight, self.conv.bias, self.stride, (top, left))
    return F.conv2d(F.pad(x, (left, right, top, bottom)), self.conv.weight, self.conv.bias, self.stride)


def _linear(cin: int, cout: int, bias: bool = True, sn: bool = False):
  layer = nn.Linear(cin, cout, bias=bias)
  return torch_spectral_norm(layer) if sn else layer


def _bn(channels: int):
  return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


def _up(x):
  return F.interpolate(x, scale_factor=2, mode="nearest")


# ------------------------------------------------------------------------------------------------ VAEs

class MlpVae(nn.Module if torch else object):
  """gen_jax.nets.mlp MLPEncoder / MLPDecoder: D-h1-h2-(mean, logvar) and L-h2-h1-D, Bernoulli logits."""

  def __init__(self, in_dim: int, hidden=(200, 200), latent: int = 50, activation: str = "tanh"):
    super().__init__()
    self.act = _activation(activation)
    dims = [in_dim, *hidden]
    self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
    self.mean, self.logvar = nn.Linear(dims[-1], latent), nn.Linear(dims[-1], latent)
    rdims = [latent, *hidden[::-1]]
    self.dec = nn.ModuleList(nn.Linear(a, b) for a, b in zip(rdims[:-1], rdims[1:]))
    self.out = nn.Linear(rdims[-1], in_dim)

  def encode(self, x):
    h = x.flatten(1)
    for layer in self.enc:
      h = self.act(layer(h))
    return self.mean(h), self.logvar(h).clamp(-30.0, 20.0)

  def decode(self, z):
    h = z
    for layer in self.dec:
      h = self.act(layer(h))
    return self.out(h)


class ConvVae(nn.Module if torch else object):
  """gen_jax.nets.conv ConvEncoder / ConvDecoder with 'nearest' upsampling; `params_per_channel` decoder outputs
  per image channel (1: Bernoulli logits; 2: [location | log-scale] channel blocks of the logistic likelihood)."""

  def __init__(self, image_shape=(28, 28, 1), features=(32, 64), latent: int = 32, activation: str = "relu",
               params_per_channel: int = 1):
    super().__init__()
    h, w, c = image_shape
    self.act = _activation(activation)
    chans = [c, *features]
    self.enc = nn.ModuleList(SameConv(a, b, 3, 2) for a, b in zip(chans[:-1], chans[1:]))
    s = len(features)
    self.h0, self.w0, self.c0 = h >> s, w >> s, features[-1]
    flat = self.h0 * self.w0 * features[-1]
    self.mean, self.logvar = nn.Linear(flat, latent), nn.Linear(flat, latent)
    self.dense = nn.Linear(latent, flat)
    rchans = [self.c0, *features[::-1]]
    self.ups = nn.ModuleList(SameConv(a, b, 3, 1) for a, b in zip(rchans[:-1], rchans[1:]))
    self.out = SameConv(rchans[-1], c * params_per_channel, 3, 1)

  def encode(self, x):
    h = x
    for conv in self.enc:
      h = self.act(conv(h))
    h = h.flatten(1)
    return self.mean(h), self.logvar(h).clamp(-30.0, 20.0)

  def decode(self, z):
    h = self.act(self.dense(z)).view(z.shape[0], self.c0, self.h0, self.w0)
    for conv in self.ups:
      h = self.act(conv(_up(h)))
    return self.out(h)


def discretized_logistic_log_prob(x, out, num_bins: int = 256):
  """gen_jax.objectives.likelihoods 'logistic': out [B, 2C, H, W] = [location | log-scale (clipped to +-7)],
  x [B, C, H, W] on the grid k / 255; log-mass per image (edge bins extended to +-inf), summed over pixels."""
  c = x.shape[1]
  loc, log_scale = out[:, :c], out[:, c:].clamp(-7.0, 7.0)
  h = 0.5 / (num_bins - 1)
  inv_scale = torch.exp(-log_scale)
  a, b = (x - loc + h) * inv_scale, (x - loc - h) * inv_scale
  log_cdf_plus, log_one_minus_cdf_min = -F.softplus(-a), -F.softplus(b)
  interior = log_cdf_plus + log_one_minus_cdf_min + torch.log(-torch.expm1(-2.0 * h * inv_scale))
  lp = torch.where(x < h, log_cdf_plus, torch.where(x > 1.0 - h, log_one_minus_cdf_min, interior))
  return lp.flatten(1).sum(dim=1)


def vae_loss(model, x, eps, likelihood: str = "bernoulli"):
  """Negative ELBO (Bernoulli or discretized logistic likelihood, analytic KL), mean over the batch; eps [B, L]
  standard normal."""
  mean, logvar = model.encode(x)
  z = mean + torch.exp(0.5 * logvar) * eps
  if likelihood == "logistic":
    recon = discretized_logistic_log_prob(x, model.decode(z))
  else:
    logits = model.decode(z).reshape(x.shape[0], -1)
    target = x.reshape(x.shape[0], -1)
    recon = torch.sum(target * logits - F.softplus(logits), dim=1)
  kl = 0.5 * torch.sum(torch.exp(logvar) + mean * mean - 1.0 - logvar, dim=1)
  return -recon.mean() + kl.mean()


# ------------------------------------------------------------------------------------------------ GANs

class DcganGenerator(nn.Module if torch else object):
  """gen_jax.nets.dcgan.DCGANGenerator: dense -> BN-ReLU -> S x (nearest up, 3x3 conv, BN, ReLU) -> conv, tanh."""

  def __init__(self, z_dim: int, width: int = 64, out_shape=(28, 28, 1), stages: int = 2):
    super().__init__()
    h, w, c = out_shape
    ch = width * 2 ** (stages - 1)
    self.h0, self.w0, self.c0 = h >> stages, w >> stages, ch
    self.dense = nn.Linear(z_dim, self.h0 * self.w0 * ch, bias=False)
    self.bn0 = _bn(ch)
    convs, bns = [], []
    for _ in range(stages):
      nxt = max(1, ch // 2)
      convs.append(SameConv(ch, nxt, 3, 1))
      bns.append(_bn(nxt))
      ch = nxt
    self.convs, self.bns = nn.ModuleList(convs), nn.ModuleList(bns)
    self.out = SameConv(ch, c, 3, 1)

  def forward(self, z):
    x = self.dense(z).view(z.shape[0], self.c0, self.h0, self.w0)
    x = F.relu(self.bn0(x))
    for conv, bn in zip(self.convs, self.bns):
      x = F.relu(bn(conv(_up(x))))
    return torch.tanh(self.out(x))


class DcganDiscriminator(nn.Module if torch else object):
  """gen_jax.nets.dcgan.DCGANDiscriminator: S x (4x4 stride-2 conv, leaky ReLU 0.2) -> dense; returns (logit, feat)."""

  def __init__(self, in_shape=(28, 28, 1), width: int = 64, stages: int = 2, sn: bool = False):
    super().__init__()
    h, w, c = in_shape
    chans = [c] + [width * 2 ** i for i in range(stages)]
    self.convs = nn.ModuleList(SameConv(a, b, 4, 2, sn=sn) for a, b in zip(chans[:-1], chans[1:]))
    self.out = _linear((h >> stages) * (w >> stages) * chans[-1], 1, sn=sn)

  def forward(self, x):
    h = x
    for conv in self.convs:
      h = F.leaky_relu(conv(h), 0.2)
    return self.out(h.flatten(1))[:, 0], h


class UpResBlock(nn.Module if torch else object):
  def __init__(self, ch: int):
    super().__init__()
    self.bn0, self.bn1 = _bn(ch), _bn(ch)
    self.up_conv, self.conv = SameConv(ch, ch, 3, 1), SameConv(ch, ch, 3, 1)
    self.shortcut = nn.Conv2d(ch, ch, 1)

  def forward(self, x):
    h = self.up_conv(_up(F.relu(self.bn0(x))))
    h = self.conv(F.relu(self.bn1(h)))
    return h + _up(self.shortcut(x))   # 1x1 conv before upsampling, as gen_jax (they commute)


class ResNetGenerator(nn.Module if torch else object):
  """gen_jax.nets.resnet_gan.ResNetGenerator: dense -> S up-resblocks -> BN, ReLU, 3x3 conv, tanh."""

  def __init__(self, z_dim: int, width: int = 128, out_shape=(28, 28, 1), stages: int = 2):
    super().__init__()
    h, w, c = out_shape
    self.h0, self.w0, self.width = h >> stages, w >> stages, width
    self.dense = nn.Linear(z_dim, self.h0 * self.w0 * width)
    self.blocks = nn.ModuleList(UpResBlock(width) for _ in range(stages))
    self.bn_out = _bn(width)
    self.out = SameConv(width, c, 3, 1)

  def forward(self, z):
    x = self.dense(z).view(z.shape[0], self.width, self.h0, self.w0)
    for block in self.blocks:
      x = block(x)
    return torch.tanh(self.out(F.relu(self.bn_out(x))))


class ResNetDiscriminator(nn.Module if torch else object):
  """gen_jax.nets.resnet_gan.ResNetDiscriminator (optimized first block, S-1 down blocks, sum pool, SN dense)."""

  def __init__(self, in_channels: int = 1, width: int = 128, stages: int = 2, sn: bool = True):
    super().__init__()
    self.b0 = nn.ModuleList([SameConv(in_channels, width, 3, 1, sn=sn), SameConv(width, width, 3, 1, sn=sn),
                             SameConv(in_channels, width, 1, 1, sn=sn)])
    self.blocks = nn.ModuleList(
        nn.ModuleList([SameConv(width, width, 3, 1, sn=sn), SameConv(width, width, 3, 1, sn=sn),
                       SameConv(width, width, 1, 1, sn=sn)]) for _ in range(stages - 1))
    self.out = _linear(width, 1, sn=sn)

  def forward(self, x):
    c0, c1, sc = self.b0
    h = F.avg_pool2d(c1(F.relu(c0(x))), 2) + sc(F.avg_pool2d(x, 2))
    for c0, c1, sc in self.blocks:
      # 1x1 shortcut after pooling, as gen_jax (they commute; 4x cheaper). The 3x3 conv + pool stays direct,
      # as a PyTorch user writes it; gen_jax runs it as one stride-2 conv (nets/layers.py conv_avg_pool).
      h = F.avg_pool2d(c1(F.relu(c0(F.relu(h)))), 2) + sc(F.avg_pool2d(h, 2))
    feat = h
    return self.out(torch.sum(F.relu(h), dim=(2, 3)))[:, 0], feat


def d_loss_fn(kind: str, real, fake):
  if kind in ("minimax", "nonsaturating"):
    return F.softplus(-real).mean() + F.softplus(fake).mean()
  if kind == "hinge":
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
  raise ValueError(f"the PyTorch reference implements the nonsaturating and hinge losses, not {kind!r}")


def g_loss_fn(kind: str, fake):
  if kind == "nonsaturating":
    return F.softplus(-fake).mean()
  if kind == "minimax":
    return -F.softplus(fake).mean()
  return -fake.mean()


# ------------------------------------------------------------------------------------------------ training

def _adam(params, opt_cfg):
  return torch.optim.Adam(params, lr=float(opt_cfg.learning_rate), betas=(float(opt_cfg.b1), float(opt_cfg.b2)),
                          eps=float(opt_cfg.eps))


class _Data:
  """The training split as a uint8 NCHW tensor, drawn like gen_jax's sampler (per-epoch permutation)."""

  def __init__(self, dataset, batch_size: int, binarize: bool, generator):
    images = np.asarray(dataset.train.images)
    self.images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    self.n, self.batch_size, self.binarize, self.gen = len(images), batch_size, binarize, generator
    self.steps_per_epoch = self.n // batch_size
    self.position, self.order = 0, torch.randperm(self.n, generator=generator)

  def next(self):
    if self.position == self.steps_per_epoch:
      self.position, self.order = 0, torch.randperm(self.n, generator=self.gen)
    index = self.order[self.position * self.batch_size:(self.position + 1) * self.batch_size]
    self.position += 1
    x = self.images[index].float() / 255.0
    return torch.bernoulli(x, generator=self.gen) if self.binarize else x


class _Ema:
  def __init__(self, module, decay: float):
    self.decay = decay
    self.params = [p.detach().clone() for p in module.parameters()] if decay > 0 else []
    self.source = list(module.parameters())

  def update(self):
    if self.params:
      with torch.no_grad():
        torch._foreach_lerp_(self.params, [p.detach() for p in self.source], 1.0 - self.decay)


def _image_shape(dataset) -> tuple[int, int, int]:
  return tuple(int(s) for s in dataset.image_shape)


def _stages(h: int) -> int:
  from gen_jax.nets.gan_layers import num_stages
  return num_stages(h)


class TorchBench:
  """One config's update in PyTorch; `call(n)` runs n updates and returns the seconds taken.

  `num_threads` None keeps PyTorch's own default. `compile_backend` (e.g. 'inductor') wraps the networks (the
  VAE's loss function) in `torch.compile`; None is eager.
  """
  steps_per_call = 1

  def __init__(self, config, dataset, num_threads: int | None = None, seed: int = 0,
               compile_backend: str | None = None):
    _require_torch()
    if num_threads:
      torch.set_num_threads(int(num_threads))
    torch.manual_seed(seed)
    self.config = config
    self.gen = torch.Generator().manual_seed(seed)
    mc, family = config.model, config.model.family
    self.batch_size = int(config.data.batch_size)
    self.shape = _image_shape(dataset)
    h, w, c = self.shape
    binarize = dataset.binarization == "dynamic"
    self.data = _Data(dataset, self.batch_size * (int(config.gan.n_critic) if family == "gan" else 1), binarize,
                      self.gen)
    self.ema_decay = float(config.train.get("ema_decay", 0.0))
    if family == "vae":
      likelihoods = ("bernoulli",) if mc.arch == "mlp" else ("bernoulli", "logistic")
      if mc.likelihood not in likelihoods or config.objective.name != "elbo" or int(config.objective.num_samples) != 1:
        raise ValueError(f"the PyTorch reference implements the single-sample ELBO {mc.arch} VAE with the "
                         f"{' or '.join(likelihoods)} likelihood only, not {mc.likelihood!r}")
      self.likelihood = str(mc.likelihood)
      if mc.arch == "mlp":
        self.model = MlpVae(h * w * c, tuple(mc.hidden), int(mc.latent_dim), mc.activation)
      else:
        self.model = ConvVae(self.shape, tuple(mc.features), int(mc.latent_dim), mc.activation,
                             2 if self.likelihood == "logistic" else 1)
      self.opt = _adam(self.model.parameters(), config.optimizer)
      self.update = self._vae_update
    elif family == "gan":
      s, zd, sn = _stages(h), int(mc.latent_dim), bool(mc.spectral_norm)
      if mc.arch == "dcgan":
        self.g = DcganGenerator(zd, int(mc.g_width), self.shape, s)
        self.d = DcganDiscriminator(self.shape, int(mc.d_width), s, sn)
      elif mc.arch == "resnet":
        self.g = ResNetGenerator(zd, int(mc.g_width), self.shape, s)
        self.d = ResNetDiscriminator(c, int(mc.d_width), s, sn)
      else:
        raise ValueError(f"no PyTorch reference for GAN arch {mc.arch!r}")
      if float(config.gan.gp_weight) or float(config.gan.r1_weight) or float(config.gan.clip_value):
        raise ValueError("the PyTorch reference has no gradient penalties or weight clipping")
      self.g_opt, self.d_opt = _adam(self.g.parameters(), config.optimizer), _adam(self.d.parameters(),
                                                                                   config.d_optimizer)
      self.ema = _Ema(self.g, self.ema_decay)
      self.n_critic, self.loss_kind, self.z_dim = int(config.gan.n_critic), config.gan.loss, zd
      self.update = self._gan_update
    elif family == "vaegan":
      s, zd = _stages(h), int(mc.latent_dim)
      self.enc = ConvVae(self.shape, tuple(mc.features), zd, mc.get("activation", "relu"))
      del self.enc.dense, self.enc.ups, self.enc.out   # the VAE-GAN encoder is ConvEncoder alone
      self.g = DcganGenerator(zd, int(mc.g_width), self.shape, s)
      self.d = DcganDiscriminator(self.shape, int(mc.d_width), s, bool(mc.spectral_norm))
      self.e_opt, self.g_opt = _adam(self.enc.parameters(), config.optimizer), _adam(self.g.parameters(),
                                                                                     config.optimizer)
      self.d_opt = _adam(self.d.parameters(), config.d_optimizer)
      self.ema = _Ema(self.g, self.ema_decay)
      self.gamma, self.sigma, self.z_dim = float(config.vaegan.gamma), float(config.vaegan.feature_sigma), zd
      self.update = self._vaegan_update
    else:
      raise ValueError(f"no PyTorch reference for family {family!r}")
    self.images_per_step = self.data.batch_size
    self.compile_backend = compile_backend
    self._vae_loss, self._encode = vae_loss, _encode_unclipped
    if compile_backend:
      wrap = lambda f: torch.compile(f, backend=compile_backend)   # noqa: E731
      if family == "vae":
        self._vae_loss = wrap(vae_loss)
      else:   # the same parameter objects: the optimizers and the EMA see them unchanged
        self.g, self.d = wrap(self.g), wrap(self.d)
        self._encode = wrap(_encode_unclipped)

  # -- updates -----------------------------------------------------------------------------------
  def _vae_update(self):
    x = self.data.next()
    eps = torch.randn(x.shape[0], int(self.config.model.latent_dim), generator=self.gen)
    self.opt.zero_grad(set_to_none=True)
    self._vae_loss(self.model, x, eps, self.likelihood).backward()
    self.opt.step()

  def _gan_update(self):
    xs = (self.data.next() * 2.0 - 1.0).split(self.batch_size)
    for x in xs:
      with torch.no_grad():
        fake = self.g(torch.randn(self.batch_size, self.z_dim, generator=self.gen))
      self.d_opt.zero_grad(set_to_none=True)
      d_loss_fn(self.loss_kind, self.d(x)[0], self.d(fake)[0]).backward()
      self.d_opt.step()
    self.d.requires_grad_(False)
    self.g_opt.zero_grad(set_to_none=True)
    fake = self.g(torch.randn(self.batch_size, self.z_dim, generator=self.gen))
    g_loss_fn(self.loss_kind, self.d(fake)[0]).backward()
    self.g_opt.step()
    self.d.requires_grad_(True)
    self.ema.update()

  def _vaegan_update(self):
    x = self.data.next() * 2.0 - 1.0
    mean, logvar = self._encode(self.enc, x)
    kl = 0.5 * torch.sum(torch.exp(logvar) + mean * mean - 1.0 - logvar, dim=1)
    z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=self.gen)
    x_rec = self.g(z)
    x_p = self.g(torch.randn(mean.shape, generator=self.gen))
    l_real, f_real = self.d(x)
    l_rec, f_rec = self.d(x_rec)
    l_p, _ = self.d(x_p)
    diff = (f_real - f_rec).flatten(1)
    num_features = diff.shape[1]
    sigma2 = self.sigma ** 2
    llike = (0.5 * torch.sum(diff * diff, dim=1) / sigma2 + 0.5 * num_features * math.log(2 * math.pi * sigma2)).mean()
    gan_d = (F.softplus(-l_real) + F.softplus(l_rec) + F.softplus(l_p)).mean()
    gan_g = (F.softplus(-l_rec) + F.softplus(-l_p)).mean()
    losses = ((kl.mean() + llike, self.enc, self.e_opt), (self.gamma * llike + gan_g, self.g, self.g_opt),
              (gan_d, self.d, self.d_opt))
    grads = [torch.autograd.grad(loss, list(net.parameters()), retain_graph=i < 2)
             for i, (loss, net, _) in enumerate(losses)]
    for (_, net, opt), g in zip(losses, grads):
      for p, gp in zip(net.parameters(), g):
        p.grad = gp
      opt.step()
    self.ema.update()

  def call(self, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
      self.update()
    return time.perf_counter() - start


def _encode_unclipped(conv_vae, x):
  """The VAE-GAN encoder (gen_jax ConvEncoder without the VAE's logvar clipping)."""
  h = x
  for conv in conv_vae.enc:
    h = conv_vae.act(conv(h))
  h = h.flatten(1)
  return conv_vae.mean(h), conv_vae.logvar(h)


def load_mlp_vae_params(model: "MlpVae", flax_params: dict) -> None:
  """Copies gen_jax MLP VAE parameters (flax Dense kernels [in, out]) into `model` (weights [out, in])."""
  enc, dec = flax_params["encoder"], flax_params["decoder"]

  def put(layer, p):
    with torch.no_grad():
      layer.weight.copy_(torch.from_numpy(np.asarray(p["kernel"]).T.copy()))
      layer.bias.copy_(torch.from_numpy(np.asarray(p["bias"]).copy()))

  for i, layer in enumerate(model.enc):
    put(layer, enc["body"][f"dense_{i}"])
  put(model.mean, enc["mean"])
  put(model.logvar, enc["logvar"])
  for i, layer in enumerate(model.dec):
    put(layer, dec["body"][f"dense_{i}"])
  put(model.out, dec["body"]["out"])


# ------------------------------------------------------------------------------------------------ child process

# Environment variables that set PyTorch's threading (recorded as the child saw them).
THREAD_ENV_PREFIXES = ("OMP_", "MKL_", "GOMP_", "KMP_", "OPENBLAS_", "TORCH_", "ATEN_")


def one_line_error(err: BaseException) -> str:
  text = str(err).strip().splitlines()
  return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def threading_info() -> dict:
  """PyTorch's threads and the threading environment of this process."""
  parallel = torch.__config__.parallel_info().splitlines()
  backend = next((line.split(":", 1)[1].strip() for line in parallel if "parallel backend" in line), "")
  return {"torch": torch.__version__, "threads": torch.get_num_threads(),
          "interop_threads": torch.get_num_interop_threads(), "parallel_backend": backend,
          "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
          "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(THREAD_ENV_PREFIXES)}}


def _parse_child_args(argv):
  p = argparse.ArgumentParser(prog="python -m gen_jax.bench.torch_reference",
                              description="time one config's update in PyTorch (eager or torch.compile); JSON out")
  p.add_argument("--config", required=True, help="config spec, e.g. configs/gan.py or configs/vae.py:conv")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (in order)")
  p.add_argument("--mode", choices=("eager", "compile"), default="eager")
  p.add_argument("--backend", default="inductor", help="torch.compile backend of --mode=compile")
  p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: PyTorch's own)")
  p.add_argument("--serve", action="store_true",
                 help="print a 'ready' JSON line, then answer 'call N' lines from stdin with {'seconds': s}")
  p.add_argument("--rounds", type=int, default=3, help="timed rounds (without --serve)")
  p.add_argument("--min_steps", type=int, default=20)
  p.add_argument("--min_seconds", type=float, default=2.0)
  return p.parse_args(argv)


def _start(args) -> tuple[TorchBench | None, dict]:
  """Builds the config's update and runs its first 4 updates; compile_s = first two - next two (seconds)."""
  info: dict = {"mode": args.mode, "backend": args.backend if args.mode == "compile" else None, "pid": os.getpid()}
  if torch is None:
    info["error"] = TORCH_MISSING
    return None, info
  try:
    from gen_jax.bench.runner import build_config, parse_spec
    from gen_jax.data import load_dataset
    t0 = time.perf_counter()
    config = build_config(parse_spec(args.config), args.set)
    dataset = load_dataset(config.data)
    bench = TorchBench(config, dataset, args.threads, seed=int(config.seed),
                       compile_backend=args.backend if args.mode == "compile" else None)
    info["setup_s"] = time.perf_counter() - t0
    first, second = bench.call(2), bench.call(2)
    info.update({"first_updates_s": first, "compile_s": max(first - second, 0.0),
                 "batch_size": bench.batch_size, "images_per_step": bench.images_per_step})
  except Exception as err:  # the row says why (no compiler, an unsupported op, a config it does not mirror)
    info["error"] = one_line_error(err)
    bench = None
  info.update(threading_info())
  return bench, info


_PROTOCOL_OUT = None   # the JSON lines go here; everything else anything prints goes to stderr


def _say(obj) -> None:
  out = _PROTOCOL_OUT or sys.stdout
  out.write(json.dumps(obj, default=float) + "\n")
  out.flush()


def _own_stdout() -> None:
  """Keeps stdout for the JSON lines: other output (Python or C, e.g. compiler messages) goes to stderr."""
  global _PROTOCOL_OUT
  sys.stdout.flush()
  _PROTOCOL_OUT = os.fdopen(os.dup(1), "w")
  os.dup2(2, 1)
  sys.stdout = sys.stderr


def main(argv=None) -> int:
  args = _parse_child_args(sys.argv[1:] if argv is None else argv)
  _own_stdout()
  bench, info = _start(args)
  if not args.serve:
    if bench is not None:
      from gen_jax.bench import timing
      t = timing.interleaved({"torch": bench}, repeats=args.rounds, min_steps=args.min_steps,
                             min_seconds=args.min_seconds, warmup_calls=0)["torch"]
      info.update(t)
    _say(info)
    return 0 if bench is not None else 1
  _say({"ready": info})
  for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "call" and bench is not None:
      try:
        _say({"seconds": bench.call(int(arg))})
      except Exception as err:
        _say({"error": one_line_error(err)})
    elif cmd in ("quit", ""):
      break
    else:
      _say({"error": f"unknown request {line.strip()!r}" if bench is not None else info.get("error", "")})
  return 0


if __name__ == "__main__":
  sys.exit(main())
