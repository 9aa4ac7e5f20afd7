"""eval.py as a user meets it: flags it refuses (with the fix), what it prints, and partial evaluations that are
merged into an existing eval/metrics.json instead of replacing it."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys

import jax
import pytest

from gen_jax.errors import ConfigError
from gen_jax.eval import eval_summary, evaluate, metrics_file
from gen_jax.report import build as report
from gen_jax.eval.params import count_params

from conftest import REPO_ROOT, TINY


def _eval_cli():
  spec = importlib.util.spec_from_file_location("gen_jax_eval_cli", REPO_ROOT / "eval.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _run_main(monkeypatch, *argv):
  monkeypatch.setattr(sys, "argv", ["eval.py", *argv])
  return _eval_cli().main()


# --------------------------------------------------------------------------- refused flags


def test_a_config_file_is_refused_with_the_run_config_and_the_override_form(monkeypatch, capsys, tmp_path):
  with pytest.raises(ConfigError, match=r"--config=configs/gan.py is not used by eval.py.*runs/vae/config.json"
                                        r".*--config.eval.num_samples=1000"):
    _run_main(monkeypatch, "--workdir=runs/vae", "--config=configs/gan.py")
  # Through main_guard (what `python eval.py` runs): one line on stderr, exit code 2, before anything is loaded.
  from gen_jax.cli import main_guard
  monkeypatch.setattr(sys, "argv", ["eval.py", "--workdir", str(tmp_path / "nowhere"), "--config", "configs/gan.py"])
  with pytest.raises(SystemExit) as exit_info:
    main_guard(_eval_cli().main)
  err = capsys.readouterr().err
  assert exit_info.value.code == 2 and err.startswith("error: --config=configs/gan.py is not used")
  assert f"{tmp_path / 'nowhere'}/config.json" in err and "Traceback" not in err


def test_classes_that_are_not_ids_are_a_clear_error(monkeypatch, tmp_path):
  with pytest.raises(ConfigError, match=r"--classes=a is not a list of class ids.*comma-separated.*--classes=0,1"):
    _run_main(monkeypatch, "--anomaly", f"--workdir={tmp_path}", "--classes=a")
  cli = _eval_cli()
  assert cli.parse_classes(" 0, 3,") == [0, 3] and cli.parse_classes(None) is None
  with pytest.raises(ConfigError, match="--classes is empty"):
    cli.parse_classes(",")
  with pytest.raises(SystemExit):   # --classes without --anomaly would be ignored: refused instead
    _run_main(monkeypatch, f"--workdir={tmp_path}", "--classes=0")


# --------------------------------------------------------------------------- merging partial evaluations


def _report(step, groups: dict, wall=10.0, when="2024-01-01 00:00:00 UTC", workdir="runs/vae"):
  """A metrics.json as evaluate_workdir writes it: groups = {group: metrics dict or 'skip reason'}."""
  metrics, protocol, records = {}, {}, {}
  for group, content in groups.items():
    if isinstance(content, str):
      protocol[group] = {"skipped": content}
      records[group] = {"step": step, "evaluated_at": when, "metrics": [], "skipped": True}
    else:
      metrics.update(content)
      protocol[group] = {"n": len(content)}
      records[group] = {"step": step, "evaluated_at": when, "metrics": list(content)}
  protocol.update(seed=0, dataset="mnist", dataset_source="IDX")
  return {"workdir": workdir, "step": step, "family": "vae", "metrics": metrics, "protocol": protocol,
          "groups": records, "last_evaluated_groups": list(groups), "eval_group_seconds": {g: 1.0 for g in groups},
          "train": {"wall_seconds": wall},
          "eval_wall_seconds": 2.0, "params": {"total": 10, "per_network": {"encoder": 4, "decoder": 6}}}


FULL = {"likelihood": {"nll": 90.0, "elbo": -95.0}, "samples": {"fd_classifier": 12.0, "kid": 0.05, "kid_std": None},
        "modes": "no known modes", "latent": {"ppl_prior_lerp": 3.0}}


def test_a_partial_evaluation_of_the_same_checkpoint_keeps_the_other_groups():
  previous = _report(100, FULL)
  new = _report(100, {"likelihood": {"nll": 80.0, "elbo": -85.0}}, when="2024-02-02 00:00:00 UTC")
  merged, notes = metrics_file.merge_reports(previous, new)
  assert notes == []
  assert merged["metrics"] == {"nll": 80.0, "elbo": -85.0, "fd_classifier": 12.0, "kid": 0.05, "kid_std": None,
                               "ppl_prior_lerp": 3.0}
  assert list(merged["groups"]) == ["likelihood", "samples", "modes", "latent"]   # suite order
  assert merged["groups"]["likelihood"]["evaluated_at"] == "2024-02-02 00:00:00 UTC"
  assert merged["groups"]["samples"]["evaluated_at"] == "2024-01-01 00:00:00 UTC"
  assert merged["protocol"]["modes"] == {"skipped": "no known modes"} and merged["protocol"]["likelihood"] == {"n": 2}
  assert merged["protocol"]["seed"] == 0 and "likelihood evaluated" in merged["merged"]
  assert "samples, modes, latent kept" in merged["merged"]
  # A metric the re-evaluated group no longer reports goes with it; other groups' metrics stay.
  merged2, _ = metrics_file.merge_reports(previous, _report(100, {"samples": {"fd_classifier": 9.0}}))
  assert "kid" not in merged2["metrics"] and merged2["metrics"]["nll"] == 90.0


def test_another_step_or_a_retrained_checkpoint_replaces_the_file_and_names_what_was_dropped():
  previous = _report(100, FULL)
  new = _report(200, {"likelihood": {"nll": 80.0}})
  merged, notes = metrics_file.merge_reports(previous, new)
  assert merged is new and len(notes) == 1
  assert "the earlier results of samples, modes, latent were dropped: they are from step 100" in notes[0]
  assert "python eval.py --workdir=runs/vae --step=200 --config.eval.suites=\"('samples', 'modes', 'latent')\"" \
      in notes[0]
  merged, notes = metrics_file.merge_reports(previous, _report(100, {"likelihood": {"nll": 1.0}}, wall=99.0))
  assert "samples" not in merged["metrics"] and "trained again" in notes[0]
  # Every group evaluated again: nothing to keep, nothing to say.
  assert metrics_file.merge_reports(previous, _report(200, FULL)) == (_report(200, FULL), [])


def test_a_group_skipped_now_keeps_its_earlier_results_of_the_same_checkpoint():
  """E.g. a mistyped classifier path: the samples group is skipped now; its measured numbers must survive."""
  new = _report(100, {"likelihood": {"nll": 80.0}, "samples": "no feature classifier"})
  merged, notes = metrics_file.merge_reports(_report(100, FULL), new)
  assert merged["metrics"]["fd_classifier"] == 12.0 and merged["metrics"]["nll"] == 80.0
  assert "skipped" not in merged["protocol"]["samples"] and not merged["groups"]["samples"].get("skipped")
  assert "samples could not be evaluated now (samples: no feature classifier)" in notes[0]
  # Another step: the file is replaced, the skip is what that step has.
  merged, _ = metrics_file.merge_reports(_report(100, FULL), _report(200, {"samples": "no feature classifier"}))
  assert "fd_classifier" not in merged["metrics"]


def test_a_file_written_before_per_group_records_is_merged_by_metric_group():
  previous = _report(100, FULL)
  del previous["groups"]
  merged, notes = metrics_file.merge_reports(previous, _report(100, {"samples": {"fd_classifier": 9.0}}))
  assert notes == [] and merged["metrics"] == {"nll": 90.0, "elbo": -95.0, "fd_classifier": 9.0,
                                               "ppl_prior_lerp": 3.0}
  assert merged["groups"]["likelihood"]["note"] == "written before eval.py kept per-group records"


def test_the_printed_summary_gives_each_group_its_protocol_in_brief_and_its_key_numbers():
  merged, _ = metrics_file.merge_reports(_report(100, FULL), _report(100, {"likelihood": {"nll": 80.0, "elbo": -85.0,
                                                                                      "num_examples": 64}},
                                                                 when="2024-02-02 00:00:00 UTC"))
  merged["protocol"]["likelihood"].update(split="test", num_examples=64, num_importance_samples=5000, params="raw")
  lines = eval_summary.summary_lines(merged, "runs/vae/eval/metrics.json")
  text = "\n".join(lines)
  assert lines[0] == "runs/vae: step 100, dataset mnist, seed 0, 10 parameters"
  assert len(lines) == 7 and "{" not in text
  assert lines[1].split(maxsplit=1) == ["likelihood", "[test split, 64 images, k=5000, raw weights]"]
  assert lines[2].split() == ["nll", "=", "80.00", "nats,", "elbo", "=", "-85.00", "nats"]   # num_examples left out
  assert "kid = 0.0500 ± n/a" in lines[3] and "[kept from an earlier evaluation: 2024-01-01" in lines[3]
  assert lines[4].split()[:3] == ["modes", "skipped:", "no"]
  assert lines[-1] == "every number, its floor and its protocol: runs/vae/eval/metrics.json"


def test_the_printed_nll_is_in_bits_per_dim_beside_its_baseline_and_a_missing_kid_spread_says_why():
  """Colour or grey pixels: bits/dim first with the independent-pixels baseline beside it (the README's unit), nats
  after; binarized pixels: nats first. A KID from a single subset says so instead of a bare '± n/a'."""
  likelihood = {"nll": 17156.15, "nll_bits_per_dim": 8.057, "nll_independent": 16758.33,
                "nll_bits_per_dim_independent": 7.8702, "elbo": -17318.6}
  report = _report(50, {"likelihood": likelihood, "samples": {"fd_classifier": 178.6, "kid": 3.7035, "kid_std": None}})
  report["protocol"].update(dataset="cifar10")
  report["protocol"]["likelihood"]["binarization"] = "none"
  report["protocol"]["samples"]["kid"] = ("cubic polynomial kernel, one subset: all 1000 vs all 1000 feature vectors "
                                          "(subset size 1000 >= the 1000 per set, ...); no spread: kid_std n/a")
  text = "\n".join(eval_summary.summary_lines(report, "m.json"))
  assert "nll = 8.0570 bits/dim (independent pixels 7.8702; 17156.15 vs 16758.33 nats), elbo = -17318.60 nats" in text
  assert "nll_independent" not in text                      # shown beside the nll, not as a number of its own
  assert "kid = 3.7035 ± n/a (a single subset: eval.num_samples <= eval.kid_subset_size)" in text
  report["protocol"]["samples"]["kid"] = "cubic polynomial kernel, 1 subset of 500; no spread: kid_std n/a"
  assert "± n/a (a single subset: eval.kid_subsets = 1)" in "\n".join(eval_summary.summary_lines(report, "m.json"))
  # Binarized MNIST: nats first (as published), bits/dim in brackets; from the dataset name in an older file.
  binarized = _report(50, {"likelihood": {"nll": 91.96, "nll_bits_per_dim": 0.1692, "nll_independent": 205.81,
                                          "nll_bits_per_dim_independent": 0.3787}})
  binarized["protocol"]["dataset"] = "binarized_mnist"
  assert "nll = 91.96 nats (independent pixels 205.81; 0.1692 vs 0.3787 bits/dim)" in "\n".join(
      eval_summary.summary_lines(binarized, "m.json"))
  binarized["protocol"]["likelihood"]["binarization"] = "a fresh Bernoulli(pixel/255) draw per test image"
  binarized["protocol"]["dataset"] = "mnist"
  assert "nll = 91.96 nats (" in "\n".join(eval_summary.summary_lines(binarized, "m.json"))
  # A conditional model's baseline is fitted per class, and its name says so.
  report["protocol"]["likelihood"]["baseline"] = "nll_independent: every pixel on its own given the class (...)"
  assert "nll = 8.0570 bits/dim (independent pixels given the class 7.8702;" in "\n".join(
      eval_summary.summary_lines(report, "m.json"))


def test_long_summaries_wrap_between_numbers_never_inside_one():
  metrics = {f"impute_mse_{k}_{m}": 0.1 for k in ("half", "centre", "random") for m in ("meanfill", "latentopt")}
  report = _report(100, {"imputation": metrics})
  lines = eval_summary.summary_lines(report, "m.json", width=60)
  body = lines[1:-1]
  assert body[0].split()[0] == "imputation"
  body[0] = body[0].replace("imputation", "", 1)
  assert len(body) >= 3 and all(len(line) <= 60 for line in body)
  items = [item for line in body for item in line.strip().rstrip(",").split(", ")]
  assert len(items) == 6 and all(item.startswith("impute_mse_") and item.endswith(" = 0.1000") for item in items)
  assert all(line.rstrip().endswith(",") for line in body[:-1])


# --------------------------------------------------------------------------- on a tiny trained run


@pytest.fixture(scope="module")
def tiny_vae(make_config, tmp_path_factory):
  """A 12-step MLP VAE with checkpoints at steps 10 and 12; tests copy it before writing into it."""
  from gen_jax import parallel
  from gen_jax.train import loop
  root = tmp_path_factory.mktemp("tiny_vae")
  config = make_config("configs/vae.py", *TINY, "train.num_steps=12", "eval.num_examples=32")
  summary = loop.train(config, root / "vae", progress=False, mesh=parallel.make_mesh(jax.devices()[:1]))
  leaves = sum(x.size for m in summary["state"].models.values() for x in jax.tree.leaves(m.params))
  return root / "vae", leaves


def _copy(run, tmp_path):
  shutil.copytree(run, tmp_path / "vae")
  return tmp_path / "vae"


def test_eval_merges_a_partial_run_prints_a_short_summary_and_records_the_parameters(tiny_vae, tmp_path,
                                                                                     monkeypatch, capsys):
  run, leaves = tiny_vae
  run = _copy(run, tmp_path)
  assert _run_main(monkeypatch, f"--workdir={run}", "--no_progress", "--config.eval.suites=('likelihood',)") == 0
  out = capsys.readouterr().out
  assert out.splitlines()[0] == f"{run}: step 12, dataset binarized_mnist, seed 0, {leaves:,} parameters"
  assert "likelihood [test split, 32 images, k=" in out and "nll = " in out and f"{run}/eval/metrics.json" in out
  assert len(out.splitlines()) <= 5 and '"protocol"' not in out           # no JSON dump
  _run_main(monkeypatch, f"--workdir={run}", "--no_progress", "--config.eval.suites=('modes',)")
  saved = json.loads((run / "eval" / "metrics.json").read_text())
  assert set(saved["groups"]) == {"likelihood", "modes"} and "nll" in saved["metrics"]
  assert "skipped" in saved["protocol"]["modes"] and saved["protocol"]["likelihood"]["num_examples"] == 32
  assert saved["groups"]["likelihood"]["overrides"] == ["eval.suites=('likelihood',)"]
  assert saved["params"]["total"] == leaves and set(saved["params"]["per_network"]) == {"encoder", "decoder"}
  assert "kept from an earlier evaluation" in capsys.readouterr().out
  # Another checkpoint step: the file is replaced and stderr says which groups went.
  _run_main(monkeypatch, f"--workdir={run}", "--no_progress", "--step=10", "--config.eval.suites=('modes',)")
  err = capsys.readouterr().err
  assert "the earlier results of likelihood were dropped: they are from step 12" in err
  saved = json.loads((run / "eval" / "metrics.json").read_text())
  assert saved["step"] == 10 and set(saved["groups"]) == {"modes"} and "nll" not in saved["metrics"]


def test_compare_fills_the_groups_a_partial_evaluation_left_out(tiny_vae, tmp_path, capsys):
  run, leaves = tiny_vae
  run = _copy(run, tmp_path)
  evaluate.evaluate_workdir(run, overrides=["eval.suites=('modes',)"], progress=False)
  suites = ("eval.suites=('likelihood','modes')",)
  # Without evaluating: a note on stderr and a caveat in the report, both with the command that fills the gap.
  paths = report.build_report([run], tmp_path / "r1", evaluate_missing=False, overrides=suites, progress=False)
  command = f"python eval.py --workdir={run} --step=12 --config.eval.suites=\"('likelihood',)\""
  assert command in capsys.readouterr().err
  page = paths["index_html"].read_text()
  assert "eval/metrics.json has no likelihood results" in page and command.replace('"', "&quot;").replace(
      "'", "&#x27;") in page
  # With evaluation (eval.py --compare): the missing group is evaluated at the recorded step and merged in.
  paths = report.build_report([run], tmp_path / "r2", evaluate_missing=True, overrides=suites, progress=False)
  saved = json.loads((run / "eval" / "metrics.json").read_text())
  assert set(saved["groups"]) == {"likelihood", "modes"} and "nll" in saved["metrics"] and saved["step"] == 12
  data = json.loads(paths["report_json"].read_text())
  assert "nll" in data["runs"][0]["metrics"] and "likelihood evaluated now" in data["runs"][0]["status"]
  assert "has no likelihood results" not in paths["index_html"].read_text()


def test_the_parameters_row_counts_the_checkpointed_parameters(tiny_vae, tmp_path):
  """Not evaluated: counted from the checkpoint's array metadata; the report shows the total and each network."""
  run, leaves = tiny_vae
  paths = report.build_report([run], tmp_path / "r", evaluate_missing=False, progress=False)
  training = json.loads(paths["report_json"].read_text())["runs"][0]["training"]
  assert training["params"] == leaves > 0
  per = training["params_per_network"]
  assert set(per) == {"encoder", "decoder"} and sum(per.values()) == leaves
  row = next(line for line in paths["report_md"].read_text().splitlines() if line.startswith("| parameters |"))
  assert row == f"| parameters | {leaves:,} (encoder {per['encoder']:,}, decoder {per['decoder']:,}) |"


def test_count_params_splits_named_sub_networks():
  import numpy as np
  gan = {"generator": {"dense": {"kernel": np.zeros((3, 4)), "bias": np.zeros(4)}},
         "discriminator": {"out": {"kernel": np.zeros((4, 1))}}}
  assert count_params(gan) == {"total": 20, "per_network": {"generator": 16, "discriminator": 4}}
  vae = {"vae": {"decoder": {"k": np.zeros(5)}, "encoder": {"k": np.zeros((2, 3))}, "embed": np.zeros(7)}}
  assert count_params(vae) == {"total": 18, "per_network": {"encoder": 6, "decoder": 5, "vae": 7}}


def test_compare_prints_where_the_report_is(tiny_vae, tmp_path, monkeypatch, capsys):
  run = _copy(tiny_vae[0], tmp_path)
  assert _run_main(monkeypatch, "--compare", str(run), "--out", str(tmp_path / "report"), "--no_progress",
                   "--config.eval.suites=('modes',)") == 0
  out = capsys.readouterr().out.splitlines()
  # 'modes' does not apply to MNIST, so eval says first that it loads only a few examples; then where the report is.
  assert out[0].startswith("eval: every requested group is skipped (modes: mode counts need a dataset")
  assert out[1:] == [f"report: {tmp_path / 'report' / 'index.html'}", f"Markdown: {tmp_path / 'report' / 'report.md'}"]
  assert (tmp_path / "report" / "index.html").is_file() and (run / "eval" / "metrics.json").is_file()


def test_the_anomaly_summary_is_the_means_and_one_line_of_classes():
  result = {"per_class": {"0": {"recon_error": 0.91, "neg_elbo": 0.88}, "1": {"recon_error": 0.7, "neg_elbo": 0.6}},
            "mean": {"recon_error": 0.805, "neg_elbo": 0.74}, "complete": True, "protocol": {"many": "keys"}}
  lines = _eval_cli()._anomaly_lines(result, "runs/vae")
  assert lines == ["anomaly detection AUROC, mean over 2 class(es): recon_error 0.8050, neg_elbo 0.7400",
                   "per class (recon_error / neg_elbo): 0: 0.910 / 0.880, 1: 0.700 / 0.600",
                   "written: runs/vae/anomaly/anomaly.json (table: anomaly.md, protocol inside the JSON)"]
  assert "INCOMPLETE" in "\n".join(_eval_cli()._anomaly_lines(dict(result, complete=False), "runs/vae"))
