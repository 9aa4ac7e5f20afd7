"""Studies: intervals and tests over seeds against closed forms, the ranking hook, the ledger (resume, merge), and the
tiny study end to end (studies/tiny.py: two runlocal entries, two seeds, a few steps each)."""
from __future__ import annotations

import json
import math
import pathlib
import shutil

import numpy as np
import pytest
from scipy import stats as scipy_stats

from gen_jax.errors import CheckpointError, ConfigError
from gen_jax.jobs import study as study_lib
from gen_jax.report import stats
from gen_jax.report import study as study_report

REPO = pathlib.Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------------- statistics
def test_t_interval_is_the_closed_form_and_bootstrap_is_seeded():
  x = [1.0, 2.0, 4.0, 7.0, None, float("nan")]   # None / NaN are dropped: n = 4
  s = stats.summarize(x)
  mean, sd = 3.5, float(np.std([1, 2, 4, 7], ddof=1))
  half = scipy_stats.t.ppf(0.975, 3) * sd / 2.0
  assert s["n"] == 4 and s["mean"] == pytest.approx(mean) and s["std"] == pytest.approx(sd)
  assert (s["ci_low"], s["ci_high"]) == pytest.approx((mean - half, mean + half))
  assert stats.summarize([5.0])["ci_low"] is None and stats.summarize([5.0])["mean"] == 5.0
  assert stats.summarize([2.0, 2.0, 2.0])["ci_high"] == pytest.approx(2.0)
  b1, b2 = stats.summarize(x, method="bootstrap"), stats.summarize(x, method="bootstrap")
  assert b1 == b2 and 1.0 <= b1["ci_low"] < mean < b1["ci_high"] <= 7.0
  with pytest.raises(ValueError):
    stats.summarize(x, method="jackknife")


def test_welch_matches_scipy_and_holm_steps_down():
  a, b = [1.0, 1.2, 0.9, 1.1], [2.0, 2.5, 1.7]
  w = stats.welch(a, b)
  ref = scipy_stats.ttest_ind(a, b, equal_var=False)
  assert w["t"] == pytest.approx(ref.statistic) and w["p"] == pytest.approx(ref.pvalue)
  assert stats.welch([1.0], b)["p"] is None                       # one seed: no test
  assert stats.welch([1.0, 1.0], [2.0, 2.0])["p"] == 0.0          # no spread, different means
  # Holm: sorted 0.01, 0.03, 0.04 -> 3 * 0.01 = 0.03 (rejected), 2 * 0.03 = 0.06 (not), then stop: 0.04 stays
  # unrejected with adjusted max(0.06, 0.04) = 0.06, although 0.04 <= 0.05 on its own.
  h = stats.holm({"a": 0.01, "b": 0.04, "c": 0.03, "untested": None})
  assert [h[k]["significant"] for k in "abc"] == [True, False, False]
  assert [h[k]["p_adjusted"] for k in "abc"] == pytest.approx([0.03, 0.06, 0.06])
  assert h["untested"] == {"p_adjusted": None, "significant": False}
  # Where Bonferroni (3 * p) rejects only the first, Holm rejects all three.
  assert all(v["significant"] for v in stats.holm({"x": 0.01, "y": 0.02, "z": 0.03}).values())
  far = [3.0, 3.1, 2.9]
  pw = stats.pairwise({"m": a, "n": far, "o": [1.05, 1.0, 1.1]})
  assert pw["m vs n"]["significant"] and not pw["m vs o"]["significant"]
  assert pw["m vs n"]["diff"] == pytest.approx(np.mean(a) - np.mean(far))
  assert stats.significantly(pw, "n", "m")["diff"] == pytest.approx(np.mean(far) - np.mean(a))


# -------------------------------------------------------------------------------------------- synthetic ledgers
INFO = {"name": "synthetic", "description": "", "file": "studies/synthetic.py", "variant": "", "datasets": ["mnist"],
        "seeds": [0, 1, 2], "entries": [{"name": n, "config": "configs/x.py", "overrides": []} for n in "abc"],
        "budget": {"rule": "images", "images": 1000, "seconds": 0.0}, "eval_overrides": [], "train_overrides": []}


def _record(entry: str, seed: int, metrics: dict) -> dict:
  key = study_lib.run_key(entry, "mnist", seed)
  return {"format": 1, "study": "synthetic", "entry": entry, "dataset": "mnist", "seed": seed, "key": key,
          "config": {"seed": seed}, "budget": {"rule": "images", "images": 1000, "images_per_step": 10,
                                                "steps": 100, "images_seen": 1000},
          "train": {"wall_seconds": 10.0}, "eval": {"wall_seconds": 5.0},
          "metrics": {"metrics": metrics, "protocol": {"samples": {"num_samples": 100, "params": f"p{entry}"}}},
          "curve": {"eval_rows": [{"step": 50, "split": "eval", "fd_classifier": 100.0 + seed},
                                  {"step": 100, "split": "eval", "fd_classifier": 50.0 + seed}]},
          "hardware": {"cpu": "test cpu", "cpu_cores": 2}, "code": {"commit": "0" * 40, "code_dirty": False},
          "images": {}}


def _synthetic_records() -> dict[str, dict]:
  out = {}
  for seed in range(3):
    noise = [0.3, -0.2, -0.1][seed]
    per_entry = {
        # a: clearly the lowest FD; but imputes worse than mean fill, and its recall is low (smoothness gated)
        "a": {"fd_classifier": 10 + noise, "impute_mse_half": 0.09 + noise / 100, "impute_mse_half_meanfill": 0.067,
              "recall": 0.2, "ppl_prior_slerp": 5.0 + noise},
        # b and c: FDs not significantly different; b imputes best
        "b": {"fd_classifier": 30 + 3 * noise, "impute_mse_half": 0.05 + noise / 100,
              "impute_mse_half_meanfill": 0.067, "recall": 0.7, "ppl_prior_slerp": 50.0 + noise},
        "c": {"fd_classifier": 31 - 3 * noise, "impute_mse_half": 0.06 + noise / 100,
              "impute_mse_half_meanfill": 0.067, "recall": 0.6, "ppl_prior_slerp": 60.0 + noise},
    }
    for entry, metrics in per_entry.items():
      r = _record(entry, seed, metrics)
      out[r["key"]] = r
  return out


def _write_ledger(folder: pathlib.Path, records) -> None:
  for r in records:
    (folder / r["key"]).mkdir(parents=True, exist_ok=True)
    (folder / r["key"] / "record.json").write_text(json.dumps(r))


def test_winners_ties_and_the_honest_ranking_rule():
  agg = study_report.aggregate(_synthetic_records(), INFO)
  m = agg["datasets"]["mnist"]["metrics"]
  fd = m["fd_classifier"]
  assert fd["winner"] == {"kind": "win", "entries": ["a"]}
  expected = stats.summarize([10.3, 9.8, 9.9])
  assert fd["entries"]["a"]["ci_low"] == pytest.approx(expected["ci_low"])
  assert fd["entries"]["a"]["values"] == pytest.approx([10.3, 9.8, 9.9]) and fd["entries"]["a"]["seeds"] == [0, 1, 2]
  assert not fd["comparisons"]["b vs c"]["significant"] and fd["comparisons"]["a vs b"]["significant"]
  # Imputation: a has values worse than mean fill: marked, never best, although b and c are ranked.
  imp = m["impute_mse_half"]
  assert imp["entries"]["a"]["verdict"]["marked"] and not imp["entries"]["a"]["verdict"]["best"]
  assert imp["entries"]["b"]["verdict"]["best"] and imp["winner"]["entries"][0] == "b"
  # Path length: a has the shortest paths but recall 0.2 < 0.5: marked; b ranks first among the rest.
  ppl = m["ppl_prior_slerp"]
  assert "recall" in ppl["entries"]["a"]["verdict"]["marked"] and ppl["winner"]["entries"][0] == "b"
  sentences = study_report._summary_sentences("mnist", agg["datasets"]["mnist"])
  assert any(s.startswith("Fréchet distance") and "a is best" in s for s in sentences)
  assert agg["missing"] == [] and agg["datasets"]["mnist"]["curves"]["a"]["0"] == [[500, 100.0], [1000, 50.0]]
  # One seed per entry (a study's first session): nothing can be tested, and the summary says so, not "a tie".
  first = study_report.aggregate({k: r for k, r in _synthetic_records().items() if r["seed"] == 0}, INFO)
  lines = study_report._summary_sentences("mnist", first["datasets"]["mnist"])
  fd_line = next(s for s in lines if s.startswith("Fréchet distance"))
  assert "no difference can be tested yet: not called" in fd_line and "a tie" not in fd_line
  # Every other entry marked: the one left is 'only', neither a win nor "a tie" with nobody.
  records = _synthetic_records()
  for r in records.values():
    if r["entry"] == "c":
      r["metrics"]["metrics"]["impute_mse_half"] = 0.08   # worse than mean fill (0.067), like a
  only = study_report.aggregate(records, INFO)["datasets"]["mnist"]
  assert only["metrics"]["impute_mse_half"]["winner"] == {"kind": "only", "entries": ["b"]}
  line = next(s for s in study_report._summary_sentences("mnist", only) if s.startswith("Imputation MSE, half"))
  assert "b (lowest mean" in line and "only ranked entry" in line and "a tie" not in line and "Marked" in line


def test_reports_from_one_or_two_ledger_folders_are_identical(tmp_path):
  records = list(_synthetic_records().values())
  _write_ledger(tmp_path / "one", records)
  _write_ledger(tmp_path / "m1", records[::2])
  _write_ledger(tmp_path / "m2", records[1::2] + records[:1])   # one record on both machines, identical
  p1 = study_report.build_study_report([tmp_path / "one"], tmp_path / "r1", INFO)
  p2 = study_report.build_study_report([tmp_path / "m1", tmp_path / "m2"], tmp_path / "r2", INFO)
  for name in ("index_html", "report_md", "report_json"):
    assert p1[name].read_bytes() == p2[name].read_bytes(), name
  assert (tmp_path / "r1" / "assets" / "curves_mnist.png").read_bytes() == \
      (tmp_path / "r2" / "assets" / "curves_mnist.png").read_bytes()
  md = p1["report_md"].read_text()
  assert "Welch" in md and "Holm" in md and "s0: 10.300, s1: 9.800, s2: 9.900" in md
  # Two different records of one run: an error naming both.
  clash = dict(records[0], seed=records[0]["seed"], metrics={"metrics": {"fd_classifier": 1.0}})
  _write_ledger(tmp_path / "m3", [clash])
  with pytest.raises(ConfigError, match="two different ledger records"):
    study_report.read_ledgers([tmp_path / "one", tmp_path / "m3"])
  # A run of the plan without a record is listed as missing.
  partial = study_report.aggregate({k: r for k, r in _synthetic_records().items() if "seed2" not in k}, INFO)
  assert partial["missing"] == ["a__mnist__seed2", "b__mnist__seed2", "c__mnist__seed2"]


def test_a_target_metric_is_compared_by_distance_to_its_target():
  """Density (better = closer to 1): entries equally far from 1 on either side tie; the closer one wins."""
  def records(a_values, b_values):
    out = {}
    for seed in range(3):
      for entry, values in (("a", a_values), ("b", b_values), ("c", [0.5, 0.5, 0.5])):
        r = _record(entry, seed, {"density": values[seed]})
        out[r["key"]] = r
    return out
  row = study_report.aggregate(records([0.94, 0.95, 0.96], [1.04, 1.05, 1.06]), INFO)["datasets"]["mnist"]
  winner = row["metrics"]["density"]["winner"]
  assert winner["kind"] == "tie" and set(winner["entries"]) == {"a", "b"}
  row = study_report.aggregate(records([0.94, 0.95, 0.96], [1.07, 1.08, 1.09]), INFO)["datasets"]["mnist"]
  assert row["metrics"]["density"]["winner"] == {"kind": "win", "entries": ["a"]}


def test_runs_measured_with_another_feature_network_or_data_source_are_not_averaged():
  records = _synthetic_records()
  for r in records.values():   # machine-local paths differ between machines: fine
    r["metrics"]["protocol"]["dataset_source"] = (f"CIFAR-10 JPEG copy, /m{r['seed']}/c.tar.gz -> TFDS "
                                                   f"gen_jax_cifar10/jpeg 1.0.0 array_record at /m{r['seed']}/t (reused)")
    r["metrics"]["protocol"]["samples"]["feature_network_sha256"] = "aa"
  study_report.aggregate(records, INFO)
  other = dict(records)
  key = "b__mnist__seed1"
  other[key] = json.loads(json.dumps(records[key]))
  other[key]["metrics"]["protocol"]["samples"]["feature_network_sha256"] = "bb"
  with pytest.raises(ConfigError, match=r"differ in protocol samples.feature_network_sha256 \('aa' vs 'bb'\)"):
    study_report.aggregate(other, INFO)
  other[key] = json.loads(json.dumps(records[key]))
  other[key]["metrics"]["protocol"]["dataset_source"] = "CIFAR-10 binary -> TFDS gen_jax_cifar10/binary 1.0.0 at /x"
  with pytest.raises(ConfigError, match="differ in protocol dataset_source .*gen_jax_cifar10/jpeg.*binary"):
    study_report.aggregate(other, INFO)


def test_headline_table_marks_baseline_losers_and_states_the_baselines(tmp_path):
  """The README's table: one row per entry with mean [CI]; the entry worse than mean fill is marked (×), not bold;
  the last row carries the real-data floor and the mean-fill baseline."""
  records = _synthetic_records()
  for r in records.values():
    r["metrics"]["metrics"]["fd_classifier_floor"] = 1.5
  _write_ledger(tmp_path / "l", records.values())
  paths = study_report.build_study_report([tmp_path / "l"], tmp_path / "r", INFO)
  rows = {line.split("|")[1].strip(" *"): [c.strip() for c in line.split("|")[2:-1]]
          for line in paths["headline_md"].read_text().splitlines() if line.startswith("| ")}
  header = rows.pop("entry")
  fd = header.index("Fréchet distance (classifier features) ↓")
  imp = next(i for i, h in enumerate(header) if h.startswith("Imputation MSE, half mask"))
  assert rows["a"][fd].startswith("**10.000 \\[") and rows["b"][fd].startswith("30.")      # a wins FD
  assert rows["a"][imp].endswith("×") and "**" not in rows["a"][imp] and rows["b"][imp].startswith("**")
  assert rows["baseline"][imp] == "mean fill 0.0670" and rows["baseline"][fd] == "real data 1.500"
  assert rows["a"][header.index("seeds")] == "0, 1, 2"
  assert "| **a** |" in paths["report_md"].read_text()   # the same table heads the full report


def test_a_conditional_entrys_likelihood_baseline_is_shown_apart_not_averaged_in(tmp_path):
  """The NLL baseline of a conditional model is fitted per class: the baseline row states both, never their mean."""
  records = {}
  for seed in range(2):
    for entry, nll, base, conditional in (("a", 1.4, 1.70, False), ("b", 1.5, 1.70, False), ("c", 1.45, 1.63, True)):
      r = _record(entry, seed, {"nll_bits_per_dim": nll + seed / 100, "nll_bits_per_dim_independent": base})
      r["metrics"]["capabilities"] = {"conditional": conditional}
      records[r["key"]] = r
  _write_ledger(tmp_path / "l", records.values())
  paths = study_report.build_study_report([tmp_path / "l"], tmp_path / "r", INFO)
  rows = {line.split("|")[1].strip(" *"): [c.strip() for c in line.split("|")[2:-1]]
          for line in paths["headline_md"].read_text().splitlines() if line.startswith("| ")}
  nll = next(i for i, h in enumerate(rows.pop("entry")) if h.startswith("Test NLL"))
  assert rows["baseline"][nll] == "independent pixels 1.7000; independent pixels given the class 1.6300"
  assert rows["c"][nll].endswith("×")   # -log p(x|y) beside -log p(x): marked, not ranked


def test_a_note_says_when_the_code_is_not_the_code_of_the_newest_records(tmp_path):
  records = _synthetic_records()
  for r in records.values():   # seeds 0-1 by commit a..., seed 2 by b... and c...
    r["code"]["commit"] = "a" * 40 if r["seed"] < 2 else ("b" if r["entry"] == "a" else "c") * 40
  _write_ledger(tmp_path / "ledger", records.values())
  assert study_lib.commit_note(tmp_path, "b" * 40) is None and study_lib.commit_note(tmp_path, "c" * 40) is None
  note = study_lib.commit_note(tmp_path, "a" * 40)
  assert note.startswith("Note: the records of seed 2 in ") and "bbbbbbbbbb, cccccccccc; this is aaaaaaaaaa" in note
  assert study_lib.commit_note(tmp_path / "empty", "a" * 40) is None and study_lib.commit_note(tmp_path, None) is None


# ----------------------------------------------------------------------------------------------------- study files
def test_study_files_plan_equal_images_and_refuse_bad_input(tmp_path):
  study = study_lib.load_study(str(REPO / "studies/mnist.py"))
  runs = study_lib.plan(study, tmp_path)
  assert len(runs) == 15 and len({r.key for r in runs}) == 15
  # seed-major: a study stopped part-way leaves whole seeds (every entry of seed 0 before any of seed 1)
  assert [r.seed for r in runs] == [0] * 5 + [1] * 5 + [2] * 5
  assert [r.entry for r in runs[:5]] == [str(e.name) for e in study.entries]
  for r in runs:
    assert r.config.data.name == "mnist" and r.config.seed == r.seed
    seen = int(r.config.train.num_steps) * study_lib.images_per_step(r.config)
    assert study.budget.images <= seen < study.budget.images + study_lib.images_per_step(r.config)
    assert r.workdir == tmp_path / "mnist" / r.entry / "mnist" / f"seed{r.seed}"
  full = study_lib.plan(study_lib.load_study(str(REPO / "studies/fashion_mnist.py:full")), tmp_path)
  gans = [r for r in full if r.config.model.family == "gan"]
  assert gans and all(int(r.config.train.num_steps) >= 20_000 and r.config.model.g_width == 64 for r in gans)
  assert {r.config.data.name for r in full} == {"fashion_mnist"}
  with pytest.raises(ConfigError, match="not entries"):
    study_lib.plan(study, tmp_path, only=["nope"])
  with pytest.raises(ConfigError, match="unknown variant"):
    study_lib.load_study(str(REPO / "studies/mnist.py:huge"))
  with pytest.raises(ConfigError, match="does not exist"):
    study_lib.load_study("studies/none.py")


# --------------------------------------------------------------------------------------------- the tiny study
def test_tiny_study_resumes_skips_finished_runs_and_reaggregates_from_ledgers_alone(tmp_path, shared_data_dir,
                                                                                   tfds_cache_dir):
  from gen_jax import study as study_cli
  study = study_lib.load_study(str(REPO / "studies/tiny.py"))
  local = (f"data.data_dir={shared_data_dir}", f"data.tfds_dir={tfds_cache_dir}")
  out, workdirs = tmp_path / "out", tmp_path / "runs"
  # "Interrupted" after two of the four runs.
  first = study_lib.run_study(study, out, workdirs, extra_overrides=local, progress=False, max_runs=2)
  assert first["ran"] == ["vae__mnist__seed0", "gan__mnist__seed0"] and first["skipped"] == []   # seed-major
  before = {k: (out / "ledger" / k / "record.json").read_bytes() for k in first["ran"]}
  # --status: recorded runs with their costs; a run with a checkpoint is "step s of N", its time left estimated
  # from the recorded run of the same entry (training scaled by the steps left, plus a whole evaluation).
  fake = workdirs / "tiny" / "vae" / "mnist" / "seed1" / "checkpoints" / "4"
  fake.mkdir(parents=True)
  st = study_lib.status(study, out, workdirs, extra_overrides=local)
  assert [(r["key"], r["state"]) for r in st["runs"]] == [
      ("vae__mnist__seed0", "recorded"), ("gan__mnist__seed0", "recorded"),
      ("vae__mnist__seed1", "step 4 of 8"), ("gan__mnist__seed1", "not started")]
  cost = {k: json.loads(before[k]) for k in before}
  wall = {k: (c["train"]["wall_seconds"], c["eval"]["wall_seconds"]) for k, c in cost.items()}
  want = (wall["vae__mnist__seed0"][0] / 2 + wall["vae__mnist__seed0"][1] + sum(wall["gan__mnist__seed0"]))
  assert st["left_seconds"] == pytest.approx(want) and st["recorded"] == 2 and st["unestimated"] == []
  text = study_lib.status_text(st)
  assert "2 of 4 planned runs recorded" in text and "step 4 of 8" in text and "Left: about" in text
  shutil.rmtree(fake.parent.parent.parent.parent)   # leave no fake checkpoint for the resumed study
  # The same command again finishes the study: the recorded runs are skipped, not retrained.
  args = [str(REPO / "studies/tiny.py"), "--out", str(out), "--workdirs", str(workdirs), "--no_progress"]
  assert study_cli.main(args + [f"--set={s}" for s in local]) == 0
  for k, data in before.items():
    assert (out / "ledger" / k / "record.json").read_bytes() == data
  record = json.loads((out / "ledger" / "gan__mnist__seed1" / "record.json").read_text())
  assert record["train"]["steps"] == 8 and record["budget"]["images_seen"] == 320
  assert record["metrics"]["metrics"]["fd_classifier"] > 0 and record["hardware"]["jax_version"]
  assert [r["step"] for r in record["curve"]["eval_rows"]] == [8] and "commit" in record["code"]
  assert (out / "ledger" / "gan__mnist__seed1" / "samples.png").is_file()
  again = study_lib.run_study(study, out, workdirs, extra_overrides=local, progress=False)
  assert again["ran"] == [] and len(again["skipped"]) == 4
  reports = {n: (out / n).read_bytes() for n in ("index.html", "report.md", "report.json")}
  # Without checkpoints or workdirs the report is rebuilt from the ledger, identically.
  shutil.rmtree(workdirs)
  assert study_cli.main(args + ["--aggregate_only"]) == 0
  for n, data in reports.items():
    assert (out / n).read_bytes() == data, n
  agg = json.loads(reports["report.json"])
  fd = agg["datasets"]["mnist"]["metrics"]["fd_classifier"]
  assert fd["entries"]["gan"]["n"] == 2 and math.isfinite(fd["entries"]["vae"]["mean"])
  assert (out / "assets" / "curves_mnist.png").is_file()
  assert (out / "assets" / "gan__mnist__seed0_samples.png").is_file()
  # The NLL's trivial baseline is measured with the likelihood and stated under the headline table; a record
  # measured before it existed gains exactly the same numbers from the data alone (gen_jax.jobs.nll_baseline).
  from gen_jax.jobs import nll_baseline
  vae_path = out / "ledger" / "vae__mnist__seed0" / "record.json"
  measured = json.loads(vae_path.read_text())
  m = measured["metrics"]["metrics"]
  assert 0 < m["nll_bits_per_dim_independent"] < m["nll_bits_per_dim"]   # 8 steps: worse than independent pixels
  assert "independent pixels" in (out / "headline.md").read_text()
  old = json.loads(vae_path.read_text())
  for k in ("nll_independent", "nll_bits_per_dim_independent"):
    del old["metrics"]["metrics"][k]
  del old["metrics"]["protocol"]["likelihood"]["baseline"]
  vae_path.write_text(json.dumps(old))
  assert nll_baseline.main([str(out / "ledger")]) == 0
  filled = json.loads(vae_path.read_text())
  for k in ("nll_independent", "nll_bits_per_dim_independent"):
    assert filled["metrics"]["metrics"][k] == m[k], k
  assert "added to this record later" in filled["metrics"]["protocol"]["likelihood"]["baseline"]
  assert nll_baseline.add_baseline(vae_path, "x") == "has it"
  # A conditional model's record holding the unconditional baseline gets the per-class one (its NLL is -log p(x|y)).
  conditional = json.loads(vae_path.read_text())
  conditional["metrics"].setdefault("capabilities", {})["conditional"] = True
  vae_path.write_text(json.dumps(conditional))
  assert nll_baseline.add_baseline(vae_path, "x").startswith("replaced the unconditional baseline")
  per_class = json.loads(vae_path.read_text())["metrics"]
  assert per_class["metrics"]["nll_independent"] != m["nll_independent"]   # (worse here: 32 images per class)
  assert "given the class" in per_class["protocol"]["likelihood"]["baseline"]
  assert nll_baseline.add_baseline(vae_path, "x") == "has it"
  assert nll_baseline.add_baseline(out / "ledger" / "gan__mnist__seed0" / "record.json", "x") == "no likelihood"
  # A record whose test subset cannot be drawn again the same way is refused, not guessed.
  del filled["metrics"]["metrics"]["nll_independent"]
  filled["metrics"]["protocol"]["likelihood"]["examples"] = "the first 32 images"
  vae_path.write_text(json.dumps(filled))
  with pytest.raises(CheckpointError, match="not the ones the record describes"):
    nll_baseline.add_baseline(vae_path, "x")
  # ... and so is a record measured on other data than is found now (e.g. the CIFAR-10 JPEG copy vs the original).
  filled["metrics"]["protocol"]["dataset_source"] = "CIFAR-10 original binary -> TFDS gen_jax_cifar10/binary 1.0.0"
  vae_path.write_text(json.dumps(filled))
  with pytest.raises(CheckpointError, match="not the data the record was measured on"):
    nll_baseline.add_baseline(vae_path, "x")
  # A record made with another config than the study now plans is refused, with the fix.
  runs = study_lib.plan(study, workdirs, extra_overrides=local)
  runs[0].config.model.latent_dim = 5
  with pytest.raises(ConfigError, match="another config"):
    study_lib.finished(runs[0], out)


def test_wall_clock_rule_sets_steps_from_the_probe_and_keeps_them(tmp_path):
  study = study_lib.load_study(str(REPO / "studies/tiny.py"))
  study.budget.rule, study.budget.seconds = "wall_clock", 30.0
  run = study_lib.plan(study, tmp_path, only=["vae"], seeds=[0])[0]
  calls = []

  def fake_train(config, workdir):   # logs 5 rows: the first (compile) at 1 step/s, then 4 steps/s
    calls.append(int(config.train.num_steps))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = [{"step": 10 * (i + 1), "split": "train", "steps_per_sec": 1.0 if i == 0 else 4.0} for i in range(5)]
    (workdir / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return {}

  info = study_lib._probe_steps(run, 30.0, fake_train)
  assert info["num_steps"] == 120 and info["probe_steps_per_sec"] == 4.0 and calls == [50]
  assert study_lib._probe_steps(run, 30.0, fake_train) == info and calls == [50]   # kept: no second probe
  # A probe stopped by a signal writes no budget and stops the study; one without rates is an error, not 1 step/s.
  other = study_lib.plan(study, tmp_path, only=["vae"], seeds=[1])[0]
  with pytest.raises(KeyboardInterrupt, match="SIGTERM during the timing probe"):
    study_lib._probe_steps(other, 30.0, lambda c, w: {"stopped_by": "SIGTERM"})
  with pytest.raises(ConfigError, match="logged no step rate"):
    study_lib._probe_steps(other, 30.0, lambda c, w: {})
  assert not (other.workdir / study_lib.BUDGET_FILE).exists()


def test_an_evaluation_is_reused_only_if_the_study_made_it_with_the_same_eval_settings(tmp_path):
  """A run trained and evaluated earlier (by hand, or with other eval settings) is re-evaluated with the study's
  settings, which are written into its config.json first; the record names the code that evaluated it."""
  study = study_lib.load_study(str(REPO / "studies/tiny.py"))
  run = study_lib.plan(study, tmp_path / "runs", only=["vae"], seeds=[0])[0]
  from gen_jax import config as config_lib
  run.workdir.mkdir(parents=True)
  stale = config_lib.to_dict(run.config)
  stale["eval"]["num_samples"] = 7
  (run.workdir / "config.json").write_text(json.dumps(stale))
  evals = []

  def fake_train(config, workdir):
    return {"step": 8}

  def fake_eval(workdir):
    saved = json.loads((workdir / "config.json").read_text())
    evals.append(saved["eval"]["num_samples"])
    report = {"step": 8, "groups": {g: {} for g in run.config.eval.suites}, "metrics": {"x": 1.0}, "train": {}}
    (workdir / "eval").mkdir(exist_ok=True)
    (workdir / "eval" / "metrics.json").write_text(json.dumps(report))
    return report

  (run.workdir / "eval").mkdir()   # an evaluation made by hand: complete, but not the study's
  (run.workdir / "eval" / "metrics.json").write_text(json.dumps(
      {"step": 8, "groups": {g: {} for g in run.config.eval.suites}, "metrics": {"x": 0.0}}))
  record = study_lib.run_one(run, study, tmp_path / "out", train_fn=fake_train, evaluate_fn=fake_eval)
  assert evals == [int(run.config.eval.num_samples)] and record["metrics"]["metrics"]["x"] == 1.0
  assert "commit" in record["code"]
  study_lib.run_one(run, study, tmp_path / "out", train_fn=fake_train, evaluate_fn=fake_eval)
  assert len(evals) == 1                                      # the study's own evaluation, same settings: reused
  run.config.eval.imputation_steps = int(run.config.eval.imputation_steps) + 1
  study_lib.run_one(run, study, tmp_path / "out", train_fn=fake_train, evaluate_fn=fake_eval)
  assert len(evals) == 2                                      # settings changed: evaluated again


def test_runs_recorded_or_running_in_another_study_process_are_left_to_it(tmp_path, monkeypatch):
  """Two study processes plan the same runs. A run the other records after this one planned it is skipped once its
  lock is free (not re-recorded); a run the other is running now (lock held) is left to it, and the study goes on
  with the next run instead of stopping."""
  from gen_jax import config as config_lib
  from gen_jax.storage.lock import FolderLockedError
  study = study_lib.load_study(str(REPO / "studies/tiny.py"))
  first, second, third, fourth = study_lib.plan(study, tmp_path / "runs", only=["vae", "gan"], seeds=[0, 1])
  out, trained = tmp_path / "out", []

  class Lock(study_lib.FolderLock):   # the other process holds the third run's folder
    def acquire(self):
      if pathlib.Path(self.folder) == third.workdir:
        raise FolderLockedError(f"{self.folder} is in use by pid 99")
      return super().acquire()

  monkeypatch.setattr(study_lib, "FolderLock", Lock)

  def train(config, workdir, name):
    trained.append(name)
    (pathlib.Path(workdir) / "config.json").write_text(json.dumps(config_lib.to_dict(config)))
    return {"step": 8}

  def fake_eval(workdir):
    suites = json.loads((workdir / "config.json").read_text())["eval"]["suites"]
    report = {"step": 8, "groups": {g: {} for g in suites}, "metrics": {"x": 1.0}, "train": {}}
    (workdir / "eval").mkdir(exist_ok=True)
    (workdir / "eval" / "metrics.json").write_text(json.dumps(report))
    return report

  def fake_train(config, workdir):
    if pathlib.Path(workdir) == first.workdir:   # meanwhile, the other process records the second run
      study_lib.run_one(second, study, out, train_fn=lambda c, w: train(c, w, "other"), evaluate_fn=fake_eval)
    return train(config, workdir, pathlib.Path(workdir).name)

  result = study_lib.run_study(study, out, tmp_path / "runs", only=["vae", "gan"], seeds=[0, 1], progress=False,
                               train_fn=fake_train, evaluate_fn=fake_eval)
  assert trained == ["other", first.workdir.name, fourth.workdir.name]
  assert result["ran"] == [first.key, fourth.key] and result["skipped"] == [second.key]
  assert result["busy"] == [third.key]


def test_images_per_step_asks_the_family():
  """A GAN step draws n_critic real batches, a VAE or VAE-GAN step one (the family's capabilities_for)."""
  from gen_jax import config as config_lib
  gan = config_lib.default_config("gan")
  config_lib.apply_overrides(gan, ["gan.n_critic=5", "data.batch_size=16"])
  assert study_lib.batches_per_step(gan) == 5 and study_lib.images_per_step(gan) == 80
  for family in ("vae", "vaegan"):
    config = config_lib.default_config(family)
    assert study_lib.batches_per_step(config) == 1
    assert study_lib.images_per_step(config) == int(config.data.batch_size)
