"""The package's layers only point down: a module may import its own layer or a lower one, never a higher one.

  0 foundation   errors, rng, threefry, parallel, cpu_kernels, storage/
  1 ingredients  data/, nets/, objectives/
  2 models       models/ (train state, optimizers, precision, the families and their registry), config, cli
  3 train        train/ (the engine: loop, step, checkpoints, metrics log)
  4 eval         eval/ (metrics, feature networks, groups, the suite, the during-training evaluator)
  5 jobs         jobs/ (anomaly, studies: they train and evaluate models)
  6 report       report/
  7 commands     bench/ (a command of its own), and train.py / eval.py outside the package

Every import is checked, including the ones inside functions (lazy imports are still dependencies), and nothing
inside gen_jax/ may import the experiment configs in configs/.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gen_jax"

LAYERS = {
    "errors": 0, "rng": 0, "threefry": 0, "parallel": 0, "cpu_kernels": 0, "storage": 0,
    "data": 1, "nets": 1, "objectives": 1,
    "models": 2, "config": 2, "cli": 2, "schema": 2,
    "train": 3,
    "eval": 4,
    "jobs": 5,
    "report": 6,
    "bench": 7, "study": 7,
}
NAMES = {v: k for k, v in {"foundation": 0, "ingredients": 1, "models": 2, "train": 3, "eval": 4, "jobs": 5,
                            "report": 6, "commands": 7}.items()}


def _unit(module: str) -> str | None:
  """'gen_jax.eval.metrics.frechet' -> 'eval'; None for modules outside gen_jax."""
  parts = module.split(".")
  if parts[0] != "gen_jax" or len(parts) < 2:
    return None
  return parts[1]


def _module_name(path: pathlib.Path) -> str:
  rel = path.relative_to(ROOT).with_suffix("")
  parts = list(rel.parts)
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
  """(line, imported module) for every import statement in the file, resolving relative imports."""
  tree = ast.parse(path.read_text(), filename=str(path))
  here = _module_name(path).split(".")
  package = here if path.name == "__init__.py" else here[:-1]
  out = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out += [(node.lineno, alias.name) for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = package[:len(package) - node.level + 1]
        module = ".".join(base + ([node.module] if node.module else []))
      else:
        module = node.module or ""
      out.append((node.lineno, module))
      # `from gen_jax import eval` names a subpackage: count it as an import of that subpackage.
      if module == "gen_jax":
        out += [(node.lineno, f"gen_jax.{alias.name}") for alias in node.names]
  return out


def _sources():
  return sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_unit_has_a_layer():
  units = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in _sources()} - {"__init__", "__main__"}
  missing = sorted(units - set(LAYERS))
  assert not missing, f"gen_jax/{missing} has no layer in tests/test_layers.py: add it to LAYERS"


def violations() -> list[str]:
  found = []
  for path in _sources():
    unit = _unit(_module_name(path))
    if unit is None:   # gen_jax/__init__.py
      continue
    rank = LAYERS[unit]
    for line, module in _imports(path):
      if module == "configs" or module.startswith("configs."):
        found.append(f"{path.relative_to(ROOT)}:{line} imports the experiment configs ({module})")
        continue
      target = _unit(module)
      if target is None or target not in LAYERS:
        continue
      if LAYERS[target] > rank:
        found.append(f"{path.relative_to(ROOT)}:{line} ({NAMES[rank]}) imports {module} ({NAMES[LAYERS[target]]})")
  return found


def test_layers_only_point_down():
  found = violations()
  assert not found, "imports that point up a layer:\n  " + "\n  ".join(found)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
  """The checker itself can fail: a lower layer importing a higher one is reported (also from inside a function)."""
  fake = tmp_path / "gen_jax" / "train" / "bad.py"
  fake.parent.mkdir(parents=True)
  fake.write_text("def f():\n  from gen_jax.eval import suite\n  import configs.default\n")
  monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
  monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "gen_jax")
  found = violations()
  assert any("gen_jax.eval" in f for f in found) and any("configs" in f for f in found), found


@pytest.mark.parametrize("script", ["train.py", "eval.py"])
def test_command_lines_exist(script):
  assert (ROOT / script).is_file()
