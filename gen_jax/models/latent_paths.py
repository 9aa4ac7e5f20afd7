"""Paths through a latent space: linear and spherical interpolation between latent vectors.

Used by every family's interpolation grids and by the perceptual path length (`gen_jax/eval/groups/latent.py`),
so the grids and the metric walk the same paths.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def slerp(z0: jax.Array, z1: jax.Array, t: jax.Array) -> jax.Array:
  """Spherical interpolation (White 2016) between latent vectors, t in [0, 1]."""
  n0 = z0 / (jnp.linalg.norm(z0, axis=-1, keepdims=True) + 1e-8)
  n1 = z1 / (jnp.linalg.norm(z1, axis=-1, keepdims=True) + 1e-8)
  omega = jnp.arccos(jnp.clip(jnp.sum(n0 * n1, -1, keepdims=True), -1 + 1e-6, 1 - 1e-6))
  so = jnp.sin(omega)
  return jnp.sin((1.0 - t) * omega) / so * z0 + jnp.sin(t * omega) / so * z1


def interpolate(z0: jax.Array, z1: jax.Array, num_steps: int, spherical: bool) -> jax.Array:
  """[P, L] x [P, L] -> [P, num_steps, L] points from z0 to z1."""
  t = jnp.linspace(0.0, 1.0, num_steps)[None, :, None]
  a, b = z0[:, None, :], z1[:, None, :]
  return slerp(a, b, t) if spherical else (1.0 - t) * a + t * b
