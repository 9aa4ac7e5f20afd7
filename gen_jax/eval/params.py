"""Parameter counts of a run's models, per sub-network: what eval.py records and the report shows (no JAX needed:
the trees may be arrays or a checkpoint's array metadata)."""
from __future__ import annotations

import math
from typing import Any, Mapping


# Sub-networks a model's parameters may hold under these names (a VAE's 'vae' model: 'encoder' and 'decoder').
NETWORK_NAMES = ("encoder", "decoder", "generator", "discriminator")


def _tree_size(tree) -> int:
  """Number of scalars in a parameter tree (nested mappings / sequences; leaves with a .shape: arrays, or the
  checkpoint's array metadata)."""
  if tree is None:
    return 0
  if isinstance(tree, Mapping):
    return sum(_tree_size(v) for v in tree.values())
  if isinstance(tree, (list, tuple)):
    return sum(_tree_size(v) for v in tree)
  shape = getattr(tree, "shape", None)
  return math.prod(int(d) for d in shape) if shape is not None else 0


def count_params(models: Mapping[str, Any]) -> dict:
  """{"total": n, "per_network": {network: n}} from {model name: its trainable parameter tree}. A model whose
  parameters hold named sub-networks (NETWORK_NAMES) is split into them; the rest of it keeps the model's name."""
  per: dict[str, int] = {}
  for name, params in models.items():
    inner = [k for k in NETWORK_NAMES if isinstance(params, Mapping) and k in params]
    for k in inner:
      per[k] = per.get(k, 0) + _tree_size(params[k])
    rest = {k: v for k, v in params.items() if k not in inner} if inner else params
    if not inner or rest:
      size = _tree_size(rest)
      if size or not inner:
        per[name] = per.get(name, 0) + size
  order = {k: i for i, k in enumerate(NETWORK_NAMES)}
  per = dict(sorted(per.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
  return {"total": sum(per.values()), "per_network": per}
