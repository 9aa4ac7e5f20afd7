"""Steady-state timing of anything with a `call(n)` method, several candidates interleaved.

A candidate (the JAX step, the PyTorch reference) exposes `steps_per_call` and `call(n) -> seconds`, which
runs n calls and waits for the last result (JAX: block_until_ready at the end only). On a shared machine the
load changes from second to second, so the candidates of one config are timed in turns, `repeats` rounds,
and their ratio is taken within each round.
"""
from __future__ import annotations

import math
import statistics
from typing import Protocol


class Timed(Protocol):
  steps_per_call: int

  def call(self, n: int) -> float: ...


def calls_needed(bench: Timed, min_steps: int, min_seconds: float) -> int:
  """Calls that take at least `min_seconds` and make at least `min_steps` steps (estimated from 2 calls)."""
  per_call = bench.call(2) / 2
  by_steps = math.ceil(min_steps / bench.steps_per_call)
  by_time = math.ceil(min_seconds / max(per_call, 1e-9))
  return max(1, by_steps, by_time)


def interleaved(benches: dict[str, Timed], *, repeats: int, min_steps: int, min_seconds: float,
                warmup_calls: int = 2) -> dict[str, dict]:
  """Per candidate: 'steps_per_s' of every round, their median, and the steps and seconds timed."""
  for bench in benches.values():
    bench.call(warmup_calls)
  calls = {name: calls_needed(bench, min_steps, min_seconds) for name, bench in benches.items()}
  rounds: dict[str, list[float]] = {name: [] for name in benches}
  seconds: dict[str, float] = {name: 0.0 for name in benches}
  for _ in range(repeats):
    for name, bench in benches.items():
      elapsed = bench.call(calls[name])
      rounds[name].append(calls[name] * bench.steps_per_call / elapsed)
      seconds[name] += elapsed
  return {name: {"steps_per_s": statistics.median(rounds[name]), "rounds_steps_per_s": rounds[name],
                 "steps_per_round": calls[name] * benches[name].steps_per_call, "seconds": seconds[name]}
          for name in benches}


def round_ratios(a: list[float], b: list[float]) -> list[float]:
  """a[i] / b[i] of every round (both measured in the same round)."""
  return [x / y for x, y in zip(a, b) if y > 0]


def paired_ratio(a: list[float], b: list[float]) -> float:
  """Median over rounds of a[i] / b[i] (both measured in the same round)."""
  ratios = round_ratios(a, b)
  return statistics.median(ratios) if ratios else float("nan")
