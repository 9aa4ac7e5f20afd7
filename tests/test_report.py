"""The comparison report (gen_jax/report/build.py): fake run directories with known numbers, then end to end on
tiny real runs trained and evaluated here."""
from __future__ import annotations

import html.parser
import json
import math
import pathlib
import urllib.parse

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import TINY
from gen_jax.errors import GenJaxError
from gen_jax.eval import metric_specs
from gen_jax.report import curves
from gen_jax.report import build as report
from gen_jax.train.metrics_log import read_metrics

VOID = {"meta", "img", "br", "hr", "link", "input"}


class _Page(html.parser.HTMLParser):
  """Collects table cells (text, bold, title), image sources and text; checks that tags nest properly."""

  def __init__(self):
    super().__init__(convert_charrefs=True)
    self.stack, self.errors, self.images, self.rows, self.text = [], [], [], [], []
    self._cell = None

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    if tag not in VOID:
      self.stack.append(tag)
    if tag == "tr":
      self.rows.append([])
    elif tag in ("td", "th"):
      self._cell = {"text": "", "bold": False, "title": attrs.get("title", ""), "tag": tag}
    elif tag == "strong" and self._cell is not None:
      self._cell["bold"] = True
    elif tag == "img":
      self.images.append(attrs["src"])

  def handle_endtag(self, tag):
    if tag in VOID:
      return
    if not self.stack or self.stack[-1] != tag:
      self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
      return
    self.stack.pop()
    if tag in ("td", "th"):
      self.rows[-1].append(self._cell)
      self._cell = None

  def handle_data(self, data):
    self.text.append(data)
    if self._cell is not None:
      self._cell["text"] += data


def _parse(path: pathlib.Path) -> _Page:
  page = _Page()
  page.feed(path.read_text(encoding="utf-8"))
  page.close()
  assert not page.errors and page.stack == [], (page.errors, page.stack)
  return page


def _png(path: pathlib.Path, value: int) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.full((6, 6), value, np.uint8)).save(path)


def _fake_run(root: pathlib.Path, name: str, family: str, dataset: str, metrics: dict | None, protocol: dict,
              anomaly: dict | None = None) -> pathlib.Path:
  run = root / name
  run.mkdir(parents=True)
  config = {"seed": 0, "data": {"name": dataset, "batch_size": 32, "classes": []},
            "model": {"family": family, "arch": "mlp" if family == "vae" else "dcgan", "hidden": [8],
                      "latent_dim": 4, "g_width": 8, "d_width": 8, "likelihood": "bernoulli"},
            "objective": {"name": "elbo", "num_samples": 1, "beta": 1.0}, "gan": {"loss": "hinge", "n_critic": 1}}
  (run / "config.json").write_text(json.dumps(config))
  rows = [{"step": s, "split": "train", "loss": 10.0 / s, "steps_per_sec": sps, "examples_per_sec": 32 * sps,
           "wall_seconds": s / 5.0} for s, sps in ((5, 1.0), (10, 5.0), (15, 7.0))]
  rows[1]["loss"] = "nan"  # metrics_log writes non-finite values as strings
  (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + '\n{"step": 20, "spl')  # cut short
  _png(run / "images" / "samples_0000010.png", 10)
  _png(run / "images" / "samples_0000020.png", 20)
  if metrics is not None:
    _png(run / "eval" / "reconstructions_0000020.png", 99)
    (run / "eval").mkdir(exist_ok=True)
    ev = {"workdir": str(run), "step": 20, "family": family, "config": config, "metrics": metrics,
          "protocol": protocol, "train": {"steps": 20, "wall_seconds": 12.5, "device_kind": "cpu", "num_devices": 8},
          "eval_hardware": {"platform": "cpu", "device_kind": "cpu", "num_devices": 8, "jax_version": "x"},
          "eval_wall_seconds": 3.0,
          "images": {"reconstructions": f"somewhere/else/{name}/eval/reconstructions_0000020.png"}}
    (run / "eval" / "metrics.json").write_text(json.dumps(ev))
  if anomaly is not None:
    (run / "anomaly").mkdir()
    (run / "anomaly" / "anomaly.json").write_text(json.dumps(anomaly))
  return run


VAE_METRICS = {"nll": 90.1234, "elbo": -95.5, "recon_mse": 0.03125, "kl": 5.0, "active_units": 12,
               "fd_classifier": 12.3, "fd_classifier_floor": 0.8, "weird_extra": 3.5}
GAN_A_METRICS = {"fd_classifier": 20.5, "fd_classifier_floor": 0.8, "precision": 0.7, "kid": 0.05,
                 "kid_std": 0.01}
GAN_B_METRICS = {"fd_classifier": 15.25, "precision": 0.9, "kid": "nan"}
ANOMALY = {"per_class": {"0": {"nll": 0.91, "recon": 0.72}, "1": {"nll": 0.6, "recon": 0.8}},
           "mean": {"nll": 0.755, "recon": 0.76}, "protocol": {"normal_class": "one at a time", "split": "test"}}


def _protocol(split: str, n: int) -> dict:
  return {"seed": 0, "dataset": "mnist", "dataset_source": "IDX files",
          "samples": {"num_samples": n, "reference_split": split, "feature_net": "classifiers/mnist sha256 abc123"}}


@pytest.fixture(scope="module")
def fake_report(tmp_path_factory):
  root = tmp_path_factory.mktemp("fake_runs")
  runs = [_fake_run(root, "vae<1>", "vae", "mnist", VAE_METRICS, _protocol("test", 64)),
          _fake_run(root, "gan_a", "gan", "mnist", GAN_A_METRICS, _protocol("test", 64)),
          _fake_run(root, "gan_b", "gan", "mnist", GAN_B_METRICS, _protocol("test", 128), anomaly=ANOMALY),
          _fake_run(root, "gan_new", "gan", "mnist", None, {})]
  out = root / "report"
  paths = report.build_report(runs, out, evaluate_missing=False, progress=False)
  return runs, out, paths


def _metrics_header(page: _Page) -> int:
  """Index of the metrics table's header row: 'metric', then one column per run (titled with its path)."""
  return next(i for i, row in enumerate(page.rows)
              if row and row[0]["tag"] == "th" and row[0]["text"] == "metric" and row[1]["title"])


def _table_rows(page: _Page) -> dict[str, list[dict]]:
  """Rows of the metrics table keyed by metric name (the first cell's title starts with 'name:')."""
  out = {}
  for row in page.rows[_metrics_header(page) + 1:]:
    if row[0]["tag"] == "th":
      break
    if row[0]["title"]:
      out[row[0]["title"].split(":")[0]] = row
  return out


def test_report_shows_every_number_in_its_run_column_and_bolds_the_best(fake_report):
  runs, out, paths = fake_report
  assert {p.name for p in out.iterdir()} >= {"index.html", "report.md", "report.json", "assets"}
  page = _parse(paths["index_html"])
  header = page.rows[_metrics_header(page)]
  names = [c["text"] for c in header[1:]]
  assert names == ["vae<1>", "gan_a", "gan_b", "gan_new"]
  rows = _table_rows(page)
  for col, metrics in enumerate((VAE_METRICS, GAN_A_METRICS, GAN_B_METRICS, {})):
    for name in set(VAE_METRICS) | set(GAN_A_METRICS) | set(GAN_B_METRICS):
      if name in metric_specs.TWINS:
        continue
      cell = rows[name][1 + col]["text"]
      expected = metric_specs.format_value(name, metrics[name]) if name in metrics else "—"
      assert cell.split(" ")[0] == expected, (name, col, cell)
  # Twins print inside their metric's cell.
  assert rows["fd_classifier"][1]["text"] == "12.300 (floor 0.800)"
  assert rows["kid"][2]["text"] == "0.0500 ± 0.0100"
  assert rows["kid"][3]["text"] == "nan"
  # Lower is better for the Frechet distance: 12.3 (vae) is the only bold one; higher for precision: gan_b.
  assert [c["bold"] for c in rows["fd_classifier"][1:]] == [True, False, False, False]
  assert [c["bold"] for c in rows["precision"][1:]] == [False, False, True, False]
  assert not any(c["bold"] for c in rows["kl"][1:])        # not ranked
  assert not any(c["bold"] for c in rows["nll"][1:])       # only one run has it: nothing to choose
  assert rows["anomaly_auroc_nll"][3]["text"] == "0.7550"  # anomaly means join the table
  assert "weird_extra" in rows                             # unknown keys are shown, not dropped
  data = json.loads(paths["report_json"].read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
  fd = next(r for r in data["table"] if r["name"] == "fd_classifier")
  assert fd["best"] == {"mnist": ["vae<1>"]} and fd["values"]["gan_b"] == 15.25


def test_report_html_is_escaped_self_contained_and_its_images_exist(fake_report):
  runs, out, paths = fake_report
  text = paths["index_html"].read_text(encoding="utf-8")
  assert "vae&lt;1&gt;" in text and "vae<1>" not in text
  assert "<script" not in text and "http://" not in text and "https://" not in text
  page = _parse(paths["index_html"])
  assert page.images
  for src in page.images:
    assert not src.startswith("/") and "://" not in src
    assert (out / urllib.parse.unquote(src)).is_file(), src
  # Eval images win over training images; else the newest training image.
  vae_assets = out / pathlib.Path(urllib.parse.unquote(next(s for s in page.images if "vae" in s))).parent
  assert np.asarray(Image.open(vae_assets / "reconstructions.png")).max() == 99
  assert np.asarray(Image.open(vae_assets / "samples.png")).max() == 20
  body = "".join(page.text)
  assert "not evaluated" in body and "python eval.py --workdir=" in body
  assert "for a quick look: python eval.py --workdir=" in body and "--config.eval.num_importance_samples=100" in body
  assert "classifiers/mnist sha256 abc123" in body  # the protocol exactly as recorded
  assert "'samples' protocol differs" in body and "num_samples" in body  # 64 vs 128 samples is flagged
  assert "normal_class" in body and "0.9100" in body  # anomaly protocol and per-class table


def test_markdown_twin_has_the_same_numbers(fake_report):
  runs, out, paths = fake_report
  md = paths["report_md"].read_text(encoding="utf-8")
  for name in ("vae\\<1\\>", "gan_a", "gan_b", "gan_new"):
    assert name in md
  for metrics in (VAE_METRICS, GAN_A_METRICS, GAN_B_METRICS):
    for name, value in metrics.items():
      assert metric_specs.format_value(name, value) in md, name
  assert "**12.300 (floor 0.800)**" in md and "| — |" in md
  for link in [part.split(")")[0] for part in md.split("](")[1:]]:
    assert (out / urllib.parse.unquote(link)).is_file(), link


def test_curves_survive_nan_single_rows_and_missing_keys(tmp_path):
  rows = [{"step": 3, "split": "train", "d_loss": 0.5, "g_loss": "nan", "kl": 1.0}]
  paths = curves.plot_run_curves(rows, tmp_path / "one")
  assert set(paths) == {"losses", "vae_terms"} and all(p.is_file() for p in paths.values())
  steps, values = curves.series([{"step": 2, "x": 1.0}, {"step": 1, "x": "inf"}, {"step": 2, "x": 3.0}], "x")
  assert steps == [1, 2] and math.isnan(values[0]) and values[1] == 3.0  # sorted; a re-logged step keeps the last
  compare = curves.plot_comparison({"a": rows, "b": [{"step": 1, "kl": 2.0}], "c": []}, tmp_path / "cmp")
  assert set(compare) == {"kl"}  # the only metric two runs share


def test_not_a_run_directory_is_a_clear_error(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(GenJaxError, match=r"not a gen_jax run directory.*train\.py --config"):
    report.build_report([tmp_path / "empty"], tmp_path / "out", progress=False)
  with pytest.raises(GenJaxError, match="does not exist"):
    report.build_report([tmp_path / "nowhere"], tmp_path / "out", progress=False)
  # The command line (eval.py --compare, the one entry point of the report) says it in one line, exit 2.
  import subprocess
  import sys
  proc = subprocess.run([sys.executable, "eval.py", "--compare", str(tmp_path / "empty"), "--out", str(tmp_path / "out")],
                        cwd=pathlib.Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2 and "not a gen_jax run directory" in proc.stderr and "Traceback" not in proc.stderr


def test_metric_specs_rank_by_direction_and_target():
  assert metric_specs.best_runs("nll", [3.0, 2.0, None, 2.0]) == [1, 3]
  assert metric_specs.best_runs("precision", [0.2, 0.9, math.nan]) == [1]
  assert metric_specs.best_runs("sample_diversity", [0.5, 1.2, 0.9]) == [2]  # closest to 1
  assert metric_specs.best_runs("kl", [1.0, 2.0]) == [] and metric_specs.best_runs("nll", [1.0, 1.0]) == []
  assert metric_specs.group_of("impute_mse_half_new") == "imputation" and metric_specs.group_of("zzz") == "other"
  names = {s.name for s in metric_specs.SPECS}
  assert all(t not in names for t in metric_specs.TWINS) and len(names) == len(metric_specs.SPECS)


def test_report_end_to_end_on_tiny_vae_and_gan(make_config, tmp_path):
  """Trains a tiny VAE (binarized MNIST) and a tiny GAN, then builds the report, which evaluates both.

  The GAN is the 2-D ring one: an image GAN has no cheap applicable evaluation group until a feature classifier
  is trained (samples/latent need it; imputation costs minutes of CPU here), while the ring GAN's mode count
  takes milliseconds. Each run skips the group that does not apply to it, with the reason recorded."""
  from gen_jax.train import loop
  vae = make_config("configs/vae.py", *TINY, "train.num_steps=4")
  gan = make_config("configs/gan_toy.py", *TINY, "data.batch_size=16", "model.hidden=(16,)", "train.num_steps=4",
                    "train.eval_every=2", "train.eval_samples=100")   # mode counts during training: a curve
  from gen_jax.eval.training_eval import make_training_evaluator   # train.py's during-training evaluation
  trained = {name: loop.train(cfg, tmp_path / name, progress=False, evaluator=make_training_evaluator)["state"]
             for name, cfg in (("vae", vae), ("gan", gan))}
  paths = report.build_report([tmp_path / "vae", tmp_path / "gan"], tmp_path / "report", evaluate_missing=True,
                              overrides=("eval.suites=('likelihood','modes')", "eval.num_examples=32"),
                              progress=False)
  page = _parse(paths["index_html"])
  rows = _table_rows(page)
  for col, name in enumerate(("vae", "gan")):
    evaluated = json.loads((tmp_path / name / "eval" / "metrics.json").read_text())
    assert evaluated["metrics"], name
    for metric, value in evaluated["metrics"].items():
      if metric not in metric_specs.TWINS:
        assert rows[metric][1 + col]["text"].split(" ")[0] == metric_specs.format_value(metric, value), metric
    for group, protocol in evaluated["protocol"].items():  # e.g. the GAN's skipped likelihood group, verbatim
      if isinstance(protocol, dict) and "skipped" in protocol:
        assert protocol["skipped"] in "".join(page.text)
  assert "nll" in rows and "modes_covered" in rows
  # The parameters row: each model's trainable parameter count, total then per network, from the checkpoint.
  params_row = next(row for row in page.rows if row and row[0]["text"] == "parameters")
  for col, name in enumerate(("vae", "gan")):
    models = trained[name].models
    leaves = sum(x.size for m in models.values() for x in jax.tree.leaves(m.params))
    networks = ("encoder", "decoder") if name == "vae" else ("generator", "discriminator")
    assert params_row[1 + col]["text"].startswith(f"{leaves:,} ({networks[0]} "), params_row[1 + col]["text"]
    assert json.loads((tmp_path / name / "eval" / "metrics.json").read_text())["params"]["total"] == leaves > 0
  for src in page.images:
    assert (paths["index_html"].parent / urllib.parse.unquote(src)).is_file()
  assert any("vae" in s and "reconstructions" in s for s in page.images)
  assert any("gan" in s and "samples" in s for s in page.images)
  curves = {r["name"]: r["curves"] for r in json.loads(paths["report_json"].read_text())["runs"]}
  assert "sample_quality (during training)" in curves["gan"] and "sample_quality (during training)" not in curves["vae"]
  assert curves["gan"]["sample_quality (during training)"] in page.images
  gan_rows = [r for r in read_metrics(tmp_path / "gan" / "metrics.jsonl") if r["split"] == "eval"]
  assert [r["step"] for r in gan_rows] == [2, 4]
  best = max(gan_rows, key=lambda r: r["modes_covered"])
  expected = (f"modes_covered {gan_rows[-1]['modes_covered']} at the end (step 4), best {best['modes_covered']} at step "
              f"{best['step']}; 2 evaluations")
  assert expected in "".join(page.text)


def test_results_tables_read_eval_metrics_and_name_the_missing_command(tmp_path):
  from gen_jax.report import nll_table
  run = tmp_path / "iwae_k5"
  with pytest.raises(SystemExit, match=r"eval\.py --workdir=.*iwae_k5"):
    nll_table.row_for(run)
  (run / "eval").mkdir(parents=True)
  (run / "eval" / "metrics.json").write_text(json.dumps({
      "config": {"objective": {"name": "iwae", "num_samples": 5}, "data": {"batch_size": 100},
                 "optimizer": {"name": "adam", "learning_rate": 1e-3, "schedule": "constant_cosine",
                               "decay_fraction": 0.3, "final_lr_fraction": 0.1}},
      "metrics": {"nll": 85.91, "elbo": -87.25, "active_units": 21, "num_latents": 50},
      "protocol": {"likelihood": {"split": "test", "num_examples": 10000, "num_importance_samples": 5000,
                                  "binarization": "dynamic, seed 3", "elbo_samples": 1}, "samples": {"num_samples": 7}, "seed": 0},
      "train": {"wall_seconds": 600.0, "num_devices": 1, "device_kind": "cpu"}, "step": 1200}))
  row = nll_table.row_for(run)
  assert (row["model"], row["k"], row["published"], row["epochs"]) == ("IWAE", 5, 85.54, 2.0)
  table = nll_table.to_markdown([row])
  assert "| iwae_k5 | IWAE | 5 | 85.91 | 87.25 | 21/50 | 85.54 | 1200 | 2 | 10.0 min | 1x cpu |" in table
  assert "test split, 10000 images, k=5000, -ELBO from 1 sample(s) of q(z|x), dynamic, seed 0" in table
  assert "- training: adam 0.001, constant_cosine (cosine over the last 30% to 0.1x), batch 100" in table
  # Reports written before eval.py grouped its protocols hold one flat dict: still read.
  flat = json.loads((run / "eval" / "metrics.json").read_text())
  flat["protocol"] = {**flat["protocol"].pop("likelihood"), "seed": 0}
  (run / "eval" / "metrics.json").write_text(json.dumps(flat))
  assert nll_table.row_for(run)["protocol"] == row["protocol"]
  flat["config"]["objective"]["gradient"] = "dreg"   # the estimator is named: its rows sit beside plain IWAE's
  (run / "eval" / "metrics.json").write_text(json.dumps(flat))
  assert nll_table.row_for(run)["model"] == "IWAE (DReG)"


def test_mode_table_reads_stacked_mnist_runs_with_their_real_data_floor(tmp_path):
  from gen_jax.report import mode_table
  run = tmp_path / "stacked_r1"
  (run / "eval").mkdir(parents=True)
  (run / "eval" / "metrics.json").write_text(json.dumps({
      "config": {"gan": {"loss": "nonsaturating", "n_critic": 1, "r1_weight": 10.0},
                 "model": {"arch": "dcgan", "g_width": 32, "d_width": 32, "spectral_norm": False}},
      "metrics": {"modes_covered": 860, "kl_to_uniform": 1.1421, "num_modes": 1000, "modes_covered_floor": 1000,
                  "kl_to_uniform_floor": 0.025},
      "protocol": {"modes": {"num_samples": 26000, "mode": "100 * digit(R) + 10 * digit(G) + digit(B)",
                             "feature_network_sha256": "6901d83c0ce01972693d", "kl": "KL(modes || uniform)",
                             "params": "ema", "floor": "26000 real triples"}, "seed": 0,
                   "dataset": "stacked_mnist"},
      "train": {"wall_seconds": 360.0}, "step": 4000}))
  table = mode_table.to_markdown([mode_table.row_for(run)])
  assert ("| stacked_r1 | nonsaturating (r1_weight=10.0) | dcgan G32/D32 | 1 | 860 / 1000 (real data: 1000) | n/a | "
          "1.142 (real data: 0.025) | 4000 | 6.0 min |") in table
  assert ("26000 samples from the ema generator; mode = 100 * digit(R) + 10 * digit(G) + digit(B) "
          "(sha256 6901d83c0ce0)") in table


def test_a_run_not_evaluated_yet_is_said_to_be_so_not_to_use_other_data(tmp_path):
  """A CIFAR-10 run without metrics.json has no feature network to differ by: it is no second dataset, and the
  caveat says how to evaluate it (the full command and the quick look). Real differences still split the runs."""
  from gen_jax.report import runs as runs_lib

  def proto(dataset, sha):
    return {"seed": 0, "dataset": dataset, "samples": {"num_samples": 64, "feature_network_sha256": sha}}

  def caveats(loaded):
    for run in loaded:
      run.status = run.status if run.eval else report.NO_METRICS_FILE
    return report._caveats(loaded, {})

  done = _fake_run(tmp_path, "done", "gan", "cifar10", {"fd_classifier": 5.0}, proto("cifar10", "c016d66f51"))
  fresh = _fake_run(tmp_path, "fresh", "gan", "cifar10", None, {})
  loaded = [runs_lib.load_run(p) for p in (done, fresh)]
  assert runs_lib.dataset_groups(loaded, "samples") == {"cifar10": [0, 1]}
  out = caveats(loaded)
  assert not any("different" in c for c in out), out
  assert out == [f"fresh: not evaluated (no eval/metrics.json); its column is empty. To evaluate it: python eval.py "
                 f"--workdir={fresh} (the full protocol: slow on a CPU, tens of minutes for colour data); for a quick "
                 f"look: python eval.py --workdir={fresh} --config.eval.num_samples=1000 --config.eval.ppl_samples=200 "
                 "--config.eval.imputation_examples=20"]   # the README's CIFAR-10 quick look
  # Another feature network, and another dataset (evaluated or not), are still told apart.
  other = _fake_run(tmp_path, "other", "gan", "cifar10", {"fd_classifier": 7.0}, proto("cifar10", "aaaaaaaa00"))
  mnist = _fake_run(tmp_path, "mnist", "gan", "mnist", None, {})
  loaded = [runs_lib.load_run(p) for p in (done, fresh, other, mnist)]
  assert runs_lib.dataset_groups(loaded, "samples") == {
      "cifar10, features c016d66f": [0], "cifar10, not evaluated": [1], "cifar10, features aaaaaaaa": [2],
      "mnist": [3]}
  out = caveats(loaded)
  assert out[0] == ("the runs use 3 different datasets or feature networks (cifar10, features c016d66f; cifar10, "
                    "features aaaaaaaa; mnist): they are ranked only against runs on the same data")
  assert [c.split(":")[0] for c in out[1:]] == ["fresh", "mnist"]
  # A run evaluated with its samples group skipped is said to be so (not "not evaluated"), and is no other data.
  skipped = _fake_run(tmp_path, "skipped", "gan", "cifar10", {"impute_mse_half": 0.05},
                      {"seed": 0, "dataset": "cifar10", "samples": {"skipped": "no feature classifier"}})
  loaded = [runs_lib.load_run(p) for p in (done, other, skipped)]
  assert runs_lib.dataset_groups(loaded, "samples") == {
      "cifar10, features c016d66f": [0], "cifar10, features aaaaaaaa": [1], "cifar10, samples skipped": [2]}
  assert caveats(loaded)[0].startswith("the runs use 2 different datasets or feature networks (cifar10, features "
                                       "c016d66f; cifar10, features aaaaaaaa)")
  # Training curves compare by the data trained on, whatever was evaluated (or skipped) and with which network.
  compare = report._compare_curves(loaded, tmp_path / "report")
  assert [t for t in compare if not t.startswith("Throughput")] == ["Runs on cifar10"]
  # A run whose config evaluates no likelihood gets only the flag of the groups it has.
  cfg = json.loads((fresh / "config.json").read_text())
  cfg["eval"] = {"suites": ["samples", "imputation"]}
  (fresh / "config.json").write_text(json.dumps(cfg))
  hint = report.evaluate_hint(runs_lib.load_run(fresh))
  assert hint.endswith(f"python eval.py --workdir={fresh} --config.eval.num_samples=1000 "
                       "--config.eval.imputation_examples=20")


def test_report_names_the_vae_objective_options_a_run_changed():
  """Two IWAE runs that differ only in their gradient estimator are told apart in the report's table."""
  from gen_jax.report.runs import _objective
  cfg = {"model": {"family": "vae", "likelihood": "bernoulli"},
         "objective": {"name": "iwae", "num_samples": 5, "gradient": "dreg"}}
  caps = {"has_likelihood": True}
  assert _objective(cfg, caps) == "iwae k=5, bernoulli likelihood, dreg gradient"
  cfg["objective"]["gradient"] = "reparam"
  assert _objective(cfg, caps) == "iwae k=5, bernoulli likelihood"
  del cfg["objective"]["gradient"]   # runs saved before the option existed
  assert _objective(cfg, caps) == "iwae k=5, bernoulli likelihood"


def test_runs_measured_with_different_feature_networks_are_not_ranked_together(tmp_path):
  """Same data, another feature network (e.g. the CIFAR-10 classifier read once vs flip-averaged: another sha256):
  their Frechet distances are in different spaces, so the comparison ranks them apart; likelihoods stay together."""
  from gen_jax.report import runs as runs_lib

  def proto(sha):
    return {"seed": 0, "dataset": "mnist", "dataset_source": "IDX files",
            "samples": {"num_samples": 64, "feature_network_sha256": sha}}
  paths = [_fake_run(tmp_path, "a", "gan", "mnist", {"fd_classifier": 5.0}, proto("aaaaaaaa11")),
           _fake_run(tmp_path, "b", "gan", "mnist", {"fd_classifier": 9.0}, proto("bbbbbbbb22")),
           _fake_run(tmp_path, "c", "gan", "mnist", {"fd_classifier": 7.0}, proto("bbbbbbbb22"))]
  loaded = [runs_lib.load_run(p) for p in paths]
  assert runs_lib.dataset_groups(loaded, "samples") == {"mnist, features aaaaaaaa": [0],
                                                        "mnist, features bbbbbbbb": [1, 2]}
  assert runs_lib.dataset_groups(loaded, "likelihood") == {"mnist": [0, 1, 2]}
  assert runs_lib.dataset_groups(loaded[1:], "samples") == {"mnist": [0, 1]}   # one network: the plain key
  row = next(r for r in runs_lib.metric_table(loaded) if r["name"] == "fd_classifier")
  # a has the lowest number but is alone in its space (nobody to beat); c beats b in theirs.
  assert {i for _, _, best in row["ranked"] for i in best} == {2}


def test_a_run_whose_nll_predates_its_baseline_is_told_how_to_measure_it(tmp_path):
  """An NLL without its independent-pixels baseline is ranked without that check: the caveat says so and gives the
  command that measures the likelihood group again (merged into the same metrics.json)."""
  from gen_jax.report import runs as runs_lib
  proto = {"seed": 0, "dataset": "mnist", "likelihood": {"num_examples": 10}}
  old = _fake_run(tmp_path, "old", "vae", "mnist", {"nll": 90.0, "nll_bits_per_dim": 0.17}, proto)
  new = _fake_run(tmp_path, "new", "vae", "mnist", {"nll": 91.0, "nll_bits_per_dim": 0.17, "nll_independent": 200.0,
                                                    "nll_bits_per_dim_independent": 0.37}, proto)
  out = report._caveats([runs_lib.load_run(p) for p in (old, new)], {})
  assert out == [f"old: its NLL was measured before the independent-pixels baseline existed, so it is ranked "
                 f"without that check. Measure it: python eval.py --workdir={old} --step=20 "
                 "--config.eval.suites=\"('likelihood',)\""]
