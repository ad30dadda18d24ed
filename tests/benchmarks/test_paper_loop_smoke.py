"""Smoke test of benchmarks.paper_loop: the whole loop at micro sizes writes the results JSON
with the expected keys, and a rerun skips every finished stage."""

from __future__ import annotations

import json

import numpy as np
import pytest

STAGES = ["frontal", "baseline", "multiview", "refine", "aux", "ft_refined", "ft_noisy", "evalset",
          "eval_baseline", "eval_ft_refined", "eval_ft_noisy"]


@pytest.fixture(scope="module")
def pl():
    from benchmarks import paper_loop

    return paper_loop


@pytest.fixture(scope="module")
def micro_run(pl, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paper_loop")
    work, results = tmp / "work", tmp / "paper_loop_micro.json"
    args = ["--config", "micro", "--seeds", "0", "--work", str(work), "--results", str(results), "--device", "cpu",
            "--threads", "1"]
    assert pl.main(args) == 0
    return pl, work, results, args


def test_micro_loop_writes_results(micro_run):
    pl, work, results, _ = micro_run
    doc = json.loads(results.read_text())
    assert doc["schema_version"] == 1
    for key in ("config", "machine", "git_commit", "status", "summary", "seeds", "device"):
        assert key in doc
    assert doc["config"]["name"] == "micro"
    assert doc["machine"]["versions"]["torch"]
    assert doc["machine"]["torch_threads"] == 1
    assert doc["status"]["0"] == {s: True for s in STAGES}
    seed = doc["seeds"]["0"]
    assert seed["baseline"]["steps"] == pl.CONFIGS["micro"].base_iters
    assert seed["ft_refined"]["config"]["init"].endswith("baseline.pth")
    assert seed["ft_refined"]["config"]["mix"] == seed["ft_noisy"]["config"]["mix"]
    assert seed["ft_refined"]["config"]["iters"] == seed["ft_noisy"]["config"]["iters"]
    for m in pl.MODELS:
        s = seed[f"eval_{m}"]["scores"]
        assert set(s["by_yaw"]) == {"0-30", "30-60", "60-90", "90-180"}
        conf = np.asarray(s["confusion"])
        assert conf.shape == (19, 20) and conf.sum() == s["num_pixels"] > 0
        assert "nose" in s["per_class"] and "boundary_excluded" in s
    assert seed["multiview"]["initial_vs_gt"]["num_views"] == pl.CONFIGS["micro"].mv_views
    models = doc["summary"]["models"]
    for m in pl.MODELS:
        for k in ("f1_extreme", "f1_frontal", "f1_overall"):
            assert models[m][k]["n"] == 1 and 0.0 <= models[m][k]["mean"] <= 1.0
    assert set(doc["summary"]["targets"]) >= {"extreme_gain_ge_0.10", "extreme_above_noisy_beyond_spread",
                                              "frontal_within_spread_and_ge_minus_0.005"}


def test_aux_datasets_share_images(micro_run):
    _, work, _, _ = micro_run
    ref = json.loads((work / "seed_0" / "refined_dataset" / "manifest.json").read_text())
    noisy = json.loads((work / "seed_0" / "noisy_dataset" / "manifest.json").read_text())
    assert [v["name"] for v in ref["views"]] == [v["name"] for v in noisy["views"]]
    a = (work / "seed_0" / "refined_dataset" / ref["views"][0]["image"]).read_bytes()
    b = (work / "seed_0" / "noisy_dataset" / noisy["views"][0]["image"]).read_bytes()
    assert a == b


def test_aux_images_composited_on_input_like_backgrounds(micro_run):
    """micro uses aux_background="synth": the re-render matches refine's saved images (same model and
    cameras) and the fine-tuning images' background is no longer black."""
    from labelsplat.io import read_label, read_rgb

    _, work, _, _ = micro_run
    aux = json.loads((work / "seed_0" / "aux.done.json").read_text())
    assert aux["aux_background"] == "synth"
    comp = aux["composite"]
    assert comp["n_views"] == aux["n_views"] > 0
    assert comp["rerender_vs_saved_abs_diff"]["max"] <= 1
    assert 0.0 < comp["mean_alpha"] < 1.0
    ref = json.loads((work / "seed_0" / "refined_dataset" / "manifest.json").read_text())
    for v in ref["views"]:
        img = read_rgb(work / "seed_0" / "refined_dataset" / v["image"])
        labels = read_label(work / "seed_0" / "refined_dataset" / v["label"], 19, shape=img.shape[:2])
        bg = labels == 0
        if bg.sum() > 20:
            assert img[bg].mean() > 20  # black background was 0


def test_rerun_skips_finished_stages(micro_run):
    pl, work, results, args = micro_run
    markers = {p.name: p.stat().st_mtime_ns for p in (work / "seed_0").glob("*.done.json")}
    assert len(markers) == len(STAGES)
    assert pl.main(args) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (work / "seed_0").glob("*.done.json")} == markers


def test_other_config_in_same_work_dir_is_refused(micro_run):
    pl, work, results, args = micro_run
    assert pl.main(args + ["--set", "novel_views=5"]) == 2


def test_same_fields_under_another_name_are_accepted(micro_run, monkeypatch, tmp_path):
    """A configuration is its fields: a renamed copy (as cpu3 is of cpu2 + overrides) may summarize
    (and resume) a work dir started under the other name."""
    import dataclasses

    pl, work, results, args = micro_run
    monkeypatch.setitem(pl.CONFIGS, "micro_renamed", dataclasses.replace(pl.CONFIGS["micro"], name="micro_renamed"))
    out = tmp_path / "renamed.json"
    assert pl.main(["--config", "micro_renamed", "--seeds", "0", "--work", str(work), "--results", str(out),
                    "--summarize"]) == 0
    assert json.loads(out.read_text())["config"]["name"] == "micro_renamed"


def test_reuse_runs_only_the_fine_tunes(micro_run, tmp_path):
    """--reuse adopts the shared stages of a run that differs only in fine-tune fields: only the
    fine-tunes and their evaluations run; the baseline's numbers are the source run's."""
    pl, work, results, _ = micro_run
    w2, r2 = tmp_path / "w2", tmp_path / "r2.json"
    base = ["--config", "micro", "--seeds", "0", "--work", str(w2), "--results", str(r2), "--device", "cpu",
            "--threads", "1", "--set", "ft_lr=0.02", "--arms", "refined"]
    assert pl.main(base + ["--reuse", str(work)]) == 0
    root = w2 / "seed_0"
    assert (root / "baseline.pth").is_symlink() and (root / "refined_dataset").is_symlink()
    assert (root / "baseline.pth.json").is_symlink()  # the parser's input size travels with the weights
    assert not (root / "frontal_dataset").exists()  # adopted records name the source's files
    done = sorted(p.name[: -len(".done.json")] for p in root.glob("*.done.json"))
    assert done == sorted([*pl.REUSABLE_STAGES, "ft_refined", "eval_ft_refined"])
    src = json.loads((work / "seed_0" / "eval_baseline.done.json").read_text())
    assert json.loads((root / "eval_baseline.done.json").read_text()) == src
    ft = json.loads((root / "ft_refined.done.json").read_text())
    assert ft["config"]["lr"] == 0.02 and ft["config"]["init"] == str(root / "baseline.pth")


def test_reuse_refused_when_shared_stages_differ(micro_run, tmp_path):
    pl, work, _, _ = micro_run
    args = ["--config", "micro", "--seeds", "0", "--work", str(tmp_path / "w"), "--results", str(tmp_path / "r.json"),
            "--device", "cpu", "--set", "base_iters=3", "--reuse", str(work)]
    with pytest.raises(SystemExit) as e:
        pl.main(args)
    assert e.value.code == 2
    micro = pl.asdict(pl.CONFIGS["micro"])
    assert pl.reuse_mismatch(pl.CONFIGS["micro"], {**micro, "ft_iters": 1}) == ["ft_iters"]
    assert pl.reusable(["ft_iters"]) == (pl.REUSABLE_STAGES, pl.REUSABLE_FILES)
    stages, files = pl.reusable(["ft_lr", "refine_fit_set"])
    assert "refine" not in stages and "aux" not in stages and "baseline" in stages and files == ("baseline.pth", "baseline.pth.json")
    assert pl.reusable(["base_iters", "ft_lr"]) is None


def test_reuse_with_another_refine_setting_reruns_refine_and_aux(pl, micro_run, tmp_path):
    """A run differing in a refine field adopts the baseline etc. and redoes refine and aux with
    its own fit overrides (recorded in the refine stage's config)."""
    _, work, _, _ = micro_run
    w = tmp_path / "w"
    args = ["--config", "micro", "--seeds", "0", "--work", str(w), "--results", str(tmp_path / "r.json"),
            "--device", "cpu", "--threads", "1", "--arms", "none", "--reuse", str(work),
            "--set", "refine_fit_set=label_view_weight=yaw:30:0.2"]
    assert pl.main(args) == 0
    root = w / "seed_0"
    assert (root / "baseline.pth").is_symlink() and not (root / "refined_dataset").is_symlink()
    assert (root / "baseline.pth.json").is_symlink()
    # the re-parsed aux labels are the source's baseline at its trained size: the noisy labels'
    # scores equal a parse through the source run's own files
    from labelsplat.parsers.infer import load_parser

    assert load_parser(root / "baseline.pth", device="cpu").info.input_size == pl.CONFIGS["micro"].input_size
    assert (root / "refined_dataset" / "manifest.json").is_file()
    ref = json.loads((root / "refine.done.json").read_text())
    assert ref["config"]["fit"]["label_view_weight"] == "yaw:30:0.2"
    assert json.loads((root / "baseline.done.json").read_text()) == json.loads(
        (work / "seed_0" / "baseline.done.json").read_text())


def test_arms_none_stops_before_the_fine_tunes(pl, micro_run, tmp_path):
    _, work, _, _ = micro_run
    w = tmp_path / "w"
    args = ["--config", "micro", "--seeds", "0", "--work", str(w), "--results", str(tmp_path / "r.json"),
            "--device", "cpu", "--threads", "1", "--arms", "none", "--reuse", str(work)]
    assert pl.main(args) == 0
    done = sorted(p.name[: -len(".done.json")] for p in (w / "seed_0").glob("*.done.json"))
    assert done == sorted(pl.REUSABLE_STAGES)


def test_f1_and_summary_on_hand_built_counts(pl):
    k = 19
    perfect = np.zeros((k, k + 1), dtype=np.int64)
    perfect[0, 0], perfect[1, 1], perfect[10, 10] = 100, 50, 10
    wrong = np.zeros((k, k + 1), dtype=np.int64)
    wrong[0, 0], wrong[1, 0], wrong[10, 1] = 100, 50, 10  # skin and nose all wrong
    zero = np.zeros((k, k + 1), dtype=np.int64)

    def scores(front, extreme):
        return {"scores": {"confusion_by_yaw": {"0-30": front.tolist(), "30-60": zero.tolist(),
                                                "60-90": extreme.tolist(), "90-180": extreme.tolist()},
                           "overall": {"mean_f1": 0.5},
                           "by_yaw": {b: None for b in ("0-30", "30-60", "60-90", "90-180")}}}

    assert pl.f1_of(scores(perfect, wrong)["scores"], ("0-30",)) == pytest.approx(1.0)
    assert pl.f1_of(scores(perfect, wrong)["scores"], pl.EXTREME_BINS) == pytest.approx(0.0)
    assert pl.f1_of(scores(perfect, wrong)["scores"], ("30-60",)) is None
    recs = {s: {"eval_baseline": scores(perfect, wrong), "eval_ft_refined": scores(perfect, perfect),
                "eval_ft_noisy": scores(perfect, wrong)} for s in (0, 1)}
    summ = pl.summarize(recs)
    assert summ["seeds_finished"] == [0, 1]
    assert summ["differences"]["extreme_refined_minus_baseline"]["mean"] == pytest.approx(1.0)
    assert summ["targets"]["extreme_gain_ge_0.10"] and summ["targets"]["extreme_above_noisy_beyond_spread"]
    assert summ["targets"]["frontal_within_spread_and_ge_minus_0.005"]
    recs[1].pop("eval_ft_noisy")  # an unfinished seed is left out of the summary
    one = pl.summarize(recs)
    assert one["seeds_finished"] == [0]
    assert one["targets"]["extreme_gain_ge_0.10"]  # a mean needs one seed, a spread needs two
    assert one["targets"]["extreme_above_noisy_beyond_spread"] is None
    assert one["targets"]["frontal_within_spread_and_ge_minus_0.005"] is None


def test_compact_json_round_trips(pl):
    doc = {"a": [[1, 2, 3], [4, 5, 6]], "b": {"c": [0.5, -1e-3], "d": ["x", "y"]}, "e": []}
    text = pl.compact_json(doc)
    assert json.loads(text) == doc
    assert "[1, 2, 3]" in text


def test_split_seeds_disjoint(pl):
    seeds = {pl.split_seed(s, sp) for s in range(3) for sp in pl.SPLITS}
    assert len(seeds) == 9


def test_bad_arms_refused(pl, tmp_path):
    with pytest.raises(SystemExit) as e:
        pl.main(["--config", "micro", "--seeds", "0", "--work", str(tmp_path / "w"), "--arms", "refined,bogus"])
    assert e.value.code == 2
    assert not (tmp_path / "w").exists()


def test_cpu3_is_cpu2_with_the_measured_overrides(pl):
    """cpu3 (the README's headline run) must stay cpu2 plus exactly the overrides it was measured
    with, so that --reuse of cpu2 work dirs keeps adopting the shared stages."""
    import dataclasses

    a, b = dataclasses.asdict(pl.CONFIGS["cpu2"]), dataclasses.asdict(pl.CONFIGS["cpu3"])
    diff = {k: b[k] for k in a if a[k] != b[k]}
    assert diff == {"name": "cpu3", "refine_fit_set": "label_view_weight=yaw:30:0.1", "ft_iters": 2500,
                    "frontal_mix": 0.6}
    assert set(diff) - {"name"} <= set(pl.FT_ONLY_FIELDS) | set(pl.REFINE_FIELDS)
