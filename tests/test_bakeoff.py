"""The bake-off (scripts/bakeoff.py): identical generator losses, budget and data order for every
contestant, the per-head GAN weight of the ablations, the discriminator-accuracy probe, the sanity
rows, the resumable task graph, and the --quick rehearsal end to end (interrupted and resumed too)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT

from sfd_lab.bakeoff import contestants as bo
from sfd_lab.bakeoff import data as bd
from sfd_lab.bakeoff.plan import BakeoffInterrupted, SettingsMismatch, Store, Task, check_plan, run_tasks
from sfd_lab.bakeoff.run import QUICK


def test_parser_lists_every_contestant():
    from sfd_lab.bakeoff.cli import BAKEOFF_CONTESTANTS, bakeoff_command, bakeoff_parser

    assert BAKEOFF_CONTESTANTS == tuple(bo.CONTESTANTS)
    a = bakeoff_parser().parse_args(["--quick", "--seeds", "3", "4", "--out", "x y", "--gan-weights", "0.1", "1"])
    assert bakeoff_command(a) == "python scripts/bakeoff.py --out 'x y' --quick --seeds 3 4 --gan-weights 0.1 1.0"
    assert "measured at" in bakeoff_parser().format_help()  # --quick's time is stated, as measured
    from sfd_lab.bakeoff.run import settings_from_args

    s = settings_from_args(bakeoff_parser().parse_args(["--contestants", "l1", "sfd_channel", "patchgan"]))
    assert s.frontier == ("sfd_channel", "patchgan")  # the default frontier, less what was left out
    s = settings_from_args(bakeoff_parser().parse_args(["--contestants", "l1", "sfd", "--frontier", "sfd"]))
    assert s.frontier == ("sfd",) and settings_from_args(bakeoff_parser().parse_args([])).frontier == (
        "sfd", "sfd_channel", "patchgan", "unet")  # fmt: skip


def test_settings_refuse_what_cannot_run():
    with pytest.raises(ValueError, match="unknown contestant"):
        bo.BakeoffSettings(contestants=("unet", "stylegan"))
    with pytest.raises(ValueError, match="distinct"):
        bo.BakeoffSettings(seeds=(1, 1))
    with pytest.raises(ValueError, match="VGGStyleDiscriminator"):
        bo.BakeoffSettings(gt_size=64)
    with pytest.raises(ValueError, match="increasing"):
        bo.BakeoffSettings(gan_weights=(0.3, 0.1))
    with pytest.raises(ValueError, match="frontier"):
        bo.BakeoffSettings(contestants=("l1", "sfd"))  # patchgan and unet are frontier contestants by default
    s = bo.BakeoffSettings(gt_size=64, contestants=("l1", "sfd"), frontier=("sfd",))
    assert s.mid_weight == 0.1 and s.weights_of("sfd") == (0.03, 0.1, 0.3) and s.weights_of("l1") == (0.0,)


def test_same_generator_losses_and_budget_and_sfd_per_head_weight_for_ablations(tmp_path):
    s = bo.BakeoffSettings()
    clips = {"quality": "quality.pt", "random": "random.pt"}
    opts = {
        k: bo.stage2_options(c, s, clips, "stage1.pth", str(tmp_path / k), gan_weight=0.2, d_lr=3e-4)
        for k, c in bo.CONTESTANTS.items()
    }
    losses = {k: bo.generator_losses(o) for k, o in opts.items()}
    assert all(v["pixel_opt"] == ("L1Loss", 1.0) for v in losses.values())
    assert losses["l1"] == {"pixel_opt": ("L1Loss", 1.0)}  # the control: no GAN term at all
    for k in ("unet", "vgg", "patchgan"):
        assert losses[k]["gan_opt"] == ("GANLoss", 0.2)
    for k in ("sfd", "sfd_random"):
        assert losses[k]["feat_gan_opt"] == losses[k]["text_gan_opt"] == ("SFDGANLoss", pytest.approx(0.1))
    # ablations keep SFD's per-head weight (w / 2), not the whole w on one head
    assert losses["feat_d"] == {"pixel_opt": ("L1Loss", 1.0), "feat_gan_opt": ("SFDGANLoss", pytest.approx(0.1))}
    assert losses["tg_d"] == {"pixel_opt": ("L1Loss", 1.0), "text_gan_opt": ("SFDGANLoss", pytest.approx(0.1))}
    for key in ("optim_g", "ema_decay", "pixel_opt", "scheduler", "total_iter"):
        assert len({json.dumps(o["train"][key], sort_keys=True) for o in opts.values()}) == 1, key
    for key in ("network_g", "scale"):
        assert len({json.dumps(o[key], sort_keys=True) for o in opts.values()}) == 1, key
    assert {o["path"]["pretrain_network_g"] for o in opts.values()} == {"stage1.pth"}
    assert {o["train"]["optim_d"]["lr"] for k, o in opts.items() if k != "l1"} == {3e-4}
    assert "network_d" not in opts["l1"] and "optim_d" not in opts["l1"]["train"]
    assert {k: o["model_type"] for k, o in opts.items()} == {k: c.host for k, c in bo.CONTESTANTS.items()}
    assert opts["sfd_random"]["network_d"]["clip_pretrained"] == "random.pt"
    assert opts["patchgan"]["network_d"]["use_high_pass"] is False  # a plain 3-channel PatchGAN
    # Feat-D's normalisation is named, so a row keeps its meaning when the architecture's default changes
    norms = {k: o["network_d"].get("feat_norm") for k, o in opts.items() if bo.CONTESTANTS[k].kind == "sfd"}
    assert norms == {"sfd": "rms", "sfd_random": "rms", "feat_d": "rms", "tg_d": None, "sfd_channel": "channel",
                     "feat_d_channel": "channel"}  # fmt: skip
    assert losses["feat_d_channel"] == losses["feat_d"] and losses["sfd_channel"] == losses["sfd"]


def test_data_order_depends_on_the_seed_only_and_pairs_stay_aligned():
    sizes = [(32, 40), (48, 32), (36, 36)]
    a = bd.data_order(sizes, 7, 4, seed=3, lr_crop=16)
    assert a == bd.data_order(sizes, 7, 4, seed=3, lr_crop=16) != bd.data_order(sizes, 7, 4, seed=4, lr_crop=16)
    assert sorted(i for step in a[:1] for i in step["idx"][:3]) == [0, 1, 2]  # epochs of permutations
    rng = np.random.default_rng(0)
    pairs = []
    for i, (h, w) in enumerate(sizes):
        hr = rng.integers(0, 256, (h * 4, w * 4, 3), dtype=np.uint8)
        lr = (F.avg_pool2d(bd.to_tensor(hr)[None], 4)[0] * 255).round().clamp(0, 255)
        pairs.append(bd.Pair(f"p{i}", f"s{i}", hr, lr.permute(1, 2, 0).numpy().astype(np.uint8)))
    for step in a:
        inside = zip(step["idx"], step["top"], step["left"])
        assert all(t + 16 <= sizes[i][0] and s + 16 <= sizes[i][1] for i, t, s in inside)
        batch = bd.make_batch(pairs, step, 16)
        assert batch["lq"].shape == (4, 3, 16, 16) and batch["gt"].shape == (4, 3, 64, 64)
        # flips/rotations applied to both: the LR crop is still the pooled HR crop (to rounding)
        assert (F.avg_pool2d(batch["gt"], 4) - batch["lq"]).abs().max() <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match="larger"):
        bd.data_order([(8, 8)], 1, 1, 0, lr_crop=16)


def test_sanity_rows_are_deterministic_and_do_what_they_say():
    rng = np.random.default_rng(1)
    lr = rng.integers(60, 200, (24, 32, 3), dtype=np.uint8)
    pair = bd.Pair("x", "x", np.zeros((96, 128, 3), np.uint8), lr)
    bic = bd.sanity_output("bicubic", pair)
    outs = {row: bd.sanity_output(row, pair) for row in bd.SANITY_ROWS}
    assert all(np.array_equal(outs[r], bd.sanity_output(r, pair)) for r in outs)  # seeded by the photo name
    n4 = outs["bicubic_noise4"].astype(float) - bic
    n8 = outs["bicubic_noise8"].astype(float) - bic
    assert 3.5 < n4.std() < 4.5 and 7.5 < n8.std() < 8.5

    def highpass(img):
        return np.abs(np.diff(img.astype(float), axis=1)).mean()

    assert highpass(outs["bicubic_usm"]) > 1.3 * highpass(bic)
    assert 3.5 < (outs["bicubic_usm_noise4"].astype(float) - outs["bicubic_usm"]).std() < 4.5
    with pytest.raises(ValueError, match="unknown sanity row"):
        bd.sanity_output("jpeg", pair)


@pytest.mark.parametrize("key", ["unet", "vgg", "sfd"])
def test_discriminator_probe_leaves_the_run_untouched(key, quality_clip_file, tmp_path):
    """The D-accuracy probe runs the discriminator in training mode (BatchNorm, spectral norm) and
    must put back every buffer it moved: the run is the same with and without probes."""
    from basicsr.models import build_model

    s = bo.BakeoffSettings(d_width=8, n_ctx=4, feat_mid=8)
    opt = bo.stage2_options(bo.CONTESTANTS[key], s, {"quality": quality_clip_file}, None, str(tmp_path), 0.1, 1e-3)
    opt["network_g"].update(num_feat=8, num_block=1, num_grow_ch=4)
    torch.manual_seed(0)
    model = build_model(opt)
    net_d = model.get_bare_model(model.net_d)
    model.feed_data({"lq": torch.rand(2, 3, 32, 32), "gt": torch.rand(2, 3, 128, 128)})
    model.optimize_parameters(1)
    before = {k: v.clone() for k, v in net_d.state_dict().items() if isinstance(v, torch.Tensor)}
    probe = (torch.rand(3, 3, 32, 32), torch.rand(3, 3, 128, 128))
    acc = bo.d_accuracy(model, probe)
    assert 0 <= acc["acc_real"] <= 1 and 0 <= acc["acc_fake"] <= 1
    assert acc["acc"] == pytest.approx((acc["acc_real"] + acc["acc_fake"]) / 2)
    after = net_d.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert not moved, moved
    assert net_d.training


def _double(x: int) -> dict:
    return {"x": 2 * x}


def test_task_graph_keeps_results_resumes_and_refuses_other_settings(tmp_path):
    calls = []

    def add(a: int, b: int) -> dict:
        calls.append((a, b))
        return {"x": a + b}

    tasks = [
        Task("one", _double, {"x": 1}),
        Task("two", _double, {"x": 2}),
        Task("sum", add, lambda r: {"a": r["one"]["x"], "b": r["two"]["x"]}, ("one", "two")),
    ]
    store = Store(str(tmp_path / "tasks"))
    with pytest.raises(BakeoffInterrupted, match="1 of 3 results are kept"):
        run_tasks(tasks, store, log=lambda m: None, stop_after=1)
    assert sorted(os.listdir(tmp_path / "tasks")) == ["one.json"]
    results, stats = run_tasks(tasks, store, log=lambda m: None)
    assert stats["skipped"] == 1 and stats["ran"] == 2 and results["sum"]["x"] == 6 and calls == [(2, 4)]
    assert results["sum"]["task_wall_s"] >= 0 and results["sum"]["task_cpu_s"] >= 0
    _, stats = run_tasks(tasks, store, log=lambda m: None)
    assert stats == {"skipped": 3, "ran": 0, "seconds": {}} and calls == [(2, 4)]
    with pytest.raises(ValueError, match="unknown task"):
        run_tasks([Task("a", _double, {"x": 1}, ("b",))], Store(str(tmp_path / "t2")), log=lambda m: None)
    check_plan(str(tmp_path), {"settings": {"iters": 300, "seeds": (0, 1)}})
    check_plan(str(tmp_path), {"settings": {"iters": 300, "seeds": [0, 1]}})  # the same plan, as read back
    with pytest.raises(SettingsMismatch, match="differing: iters"):
        check_plan(str(tmp_path), {"settings": {"iters": 100, "seeds": (0, 1)}})
    with pytest.raises(SettingsMismatch, match="differing: photos"):
        check_plan(str(tmp_path), {"settings": {"iters": 300, "seeds": (0, 1)}, "photos": "other"})


def test_plan_takes_added_or_dropped_methods_and_nothing_else(tmp_path):
    """A rerun may add a contestant (or drop one) to a bake-off on disk: each method's tasks depend on its
    own settings only; plan.json records the new list and what it was. Every other setting is refused."""
    import json

    out, open_keys = str(tmp_path), ("contestants", "frontier")
    first = {"settings": {"iters": 300, "contestants": ["l1", "sfd"], "frontier": ["sfd"]}}
    check_plan(out, first, open_keys)
    more = {"settings": {"iters": 300, "contestants": ["l1", "sfd", "sfd_channel"], "frontier": ["sfd"]}}
    check_plan(out, more, open_keys)
    with open(os.path.join(out, "plan.json"), encoding="utf-8") as f:
        plan = json.load(f)
    assert plan["settings"]["contestants"] == ["l1", "sfd", "sfd_channel"]
    assert [a["was"] for a in plan["amended"]] == [{"contestants": ["l1", "sfd"]}]
    check_plan(out, more, open_keys)  # the same again: nothing amended
    with open(os.path.join(out, "plan.json"), encoding="utf-8") as f:
        assert len(json.load(f)["amended"]) == 1
    with pytest.raises(SettingsMismatch, match="differing: iters"):
        check_plan(out, {"settings": {**more["settings"], "iters": 100}}, open_keys)
    with pytest.raises(SettingsMismatch, match="differing: contestants"):  # not open unless the caller says so
        check_plan(out, first)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _script():
    spec = importlib.util.spec_from_file_location("bakeoff_script", os.path.join(ROOT, "scripts", "bakeoff.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


@pytest.fixture(scope="module")
def quick_run(quality_clip_file, tmp_path_factory) -> dict:
    """`python scripts/bakeoff.py --quick --jobs 2` (as `make test` rehearses it)."""
    tmp = tmp_path_factory.mktemp("bakeoff")
    out, results = tmp / "bakeoff", tmp / "results"
    argv = ["--quick", "--out", str(out), "--clip-pretrained", quality_clip_file, "--results-dir", str(results)]
    assert _script().main([*argv, "--jobs", "2"]) == 0
    return {"out": out, "results": results, "report": json.loads((out / "report.json").read_text())}


def test_quick_bakeoff_fills_every_column(quick_run):
    r, out, results = quick_run["report"], quick_run["out"], quick_run["results"]
    s = r["settings"]
    assert r["quick"] and r["machine"]["jobs"] == 2 and r["command"].endswith("--jobs 2")
    assert r["photos"]["source"].startswith("scikit-image fallback") and len(r["test_scenes"]) >= 2
    # every run records its GAN weight, every held-out image its scene; frontier at >= 3 weights
    weights = {}
    for run in r["runs"]:
        weights.setdefault(run["contestant"], set()).add(run["gan_weight"])
        assert run["per_image"] and all(v["scene"] in r["test_scenes"] for v in run["per_image"].values())
        assert all(_finite(v[m]) for v in run["per_image"].values() for m in ("psnr", "ssim", "niqe", "realism"))
    assert weights["l1"] == {0.0} and all(len(weights[k]) >= 3 for k in ("sfd", "patchgan", "unet"))
    quick = bo.BakeoffSettings(**QUICK)
    assert len(r["runs"]) == sum(len(quick.weights_of(k)) for k in quick.contestants) * len(quick.seeds)
    for mid, row in r["methods"].items():
        summ = r["summary"][mid]
        assert all(_finite(summ[m]["mean"]) and summ[m]["ci"][0] <= summ[m]["mean"] <= summ[m]["ci"][1] for m in summ)
        assert set(summ) == {"psnr", "ssim", "niqe", "realism"} and len(summ["psnr"]["per_seed"]) == len(s["seeds"])
        assert row["realism"]["fold_std"] >= 0 and len(row["realism"]["fold_accuracy"]) == 2
        if row["key"] == "l1":
            assert row["d_lr"] is None and row["learned"] is None
        else:
            assert row["d_lr"] in s["lr_grid"] and row["learned"]["label"]
            assert row["capacity"]["trainable"] > 0 and row["capacity"]["gflops"] > 0
            assert (row["capacity"]["frozen"] > 0) == (bo.CONTESTANTS[row["key"]].kind == "sfd")
    assert set(r["lr_choice"]) == set(bo.CONTESTANTS) - {"l1"}
    assert all(len(v["candidates"]) == len(s["lr_grid"]) for v in r["lr_choice"].values())
    refs = r["reference_rows"]
    assert set(refs) == {"hr", *bd.SANITY_ROWS, "stage1"} and refs["hr"]["realism"] is None
    assert r["summary"]["hr"]["niqe"]["mean"] < r["summary"]["bicubic_noise8"]["niqe"]["mean"]
    assert set(r["sanity_flags"]) == {"psnr", "ssim", "niqe", "realism"}
    assert all(c["measures"] for c in r["comparisons"])
    pairs = {(m["a"], m["b"]) for m in r["frontier"]["realism"]["matched"]}
    heads = ("sfd", "sfd_channel")  # each full SFD against each stock curve, and channel against rms
    assert pairs == {(a, b) for a in heads for b in ("patchgan", "unet")} | {("sfd_channel", "sfd")}
    asked = {(c["question"], c["a"], c["b"]) for c in r["comparisons"]}
    assert ("Feat-D design", "sfd_channel@0.1", "sfd@0.1") in asked
    assert ("Feat-D design", "feat_d_channel@0.1", "feat_d@0.1") in asked
    ablations = {(a, b) for q, a, b in asked if q == "ablation"}  # an SFD's ablations share its feat_norm
    assert ("sfd_channel@0.1", "feat_d_channel@0.1") in ablations and ("sfd@0.1", "feat_d@0.1") in ablations
    assert ("sfd_channel@0.1", "feat_d@0.1") not in ablations and ("sfd_channel@0.1", "tg_d@0.1") in ablations
    names = sorted(os.listdir(out / "sr" / "bicubic"))
    assert names == sorted(f"{p['name']}.png" for p in r["photos"]["splits"]["test"])  # held-out photos only
    for png in (out / "pd.png", out / "montage.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    stem = f"bakeoff-{r['date']}-quick"
    assert sorted(os.listdir(results)) == sorted(f"{stem}{x}" for x in (".md", ".json", "-pd.png", "-montage.png"))
    md = (results / f"{stem}.md").read_text()
    assert "QUICK REHEARSAL" in md and f"({stem}-pd.png)" in md and r["command"] in md and "scikit-image" in md
    assert all(c.label in md for c in bo.CONTESTANTS.values()) and "Feat-D design study" in md


def test_interrupted_bakeoff_resumes_and_matches_an_uninterrupted_one(
    quick_run, quality_clip_file, tmp_path, monkeypatch
):
    """Stop a --quick-sized run after a few results, rerun it: the finished results are skipped and the
    report equals the uninterrupted run's on every entry the two share. Along the way: no training or
    learning-rate choice ever reads a held-out (test) photo, and every evaluation reads only those."""
    import sys

    from sfd_lab.bakeoff import jobs
    from sfd_lab.bakeoff.run import run_bakeoff

    reads = set()
    pairs_of = jobs.pairs_of

    def recording(photos, split, cache_dir):
        reads.add((sys._getframe(1).f_code.co_name, split))
        return pairs_of(photos, split, cache_dir)

    monkeypatch.setattr(jobs, "pairs_of", recording)

    s = bo.BakeoffSettings(**{**QUICK, "contestants": ("l1", "sfd"), "frontier": ("sfd",)})
    kwargs = {"quick": True, "clip_pretrained": quality_clip_file, "quiet": True, "jobs_n": 1}
    with pytest.raises(BakeoffInterrupted):
        run_bakeoff(str(tmp_path), s, stop_after=12, **kwargs)
    kept = len(os.listdir(tmp_path / "tasks"))
    assert kept == 12
    with pytest.raises(SettingsMismatch, match="differing: iters"):  # contestants may change, iterations not
        run_bakeoff(str(tmp_path), dataclasses.replace(s, iters=3), **kwargs)
    r = run_bakeoff(str(tmp_path), s, **kwargs)
    assert r["tasks"]["skipped"] == kept and r["tasks"]["ran"] == r["tasks"]["total"] - kept
    full = quick_run["report"]
    assert set(r["methods"]) == {"l1@0", "sfd@0.03", "sfd@0.1", "sfd@0.3"}
    for mid in [*r["methods"], *r["references"]]:
        assert r["summary"][mid] == full["summary"][mid], mid
    runs = {(x["method"], x["seed"]): x["per_image"] for x in full["runs"]}
    assert all(x["per_image"] == runs[(x["method"], x["seed"])] for x in r["runs"])
    assert r["lr_choice"]["sfd"] == full["lr_choice"]["sfd"]
    by_job = {}
    for fn, split in reads:
        by_job.setdefault(fn, set()).add(split)
    assert by_job["job_train"] == {"train", "val"} and by_job["job_stage1"] == by_job["job_clips"] == {"train"}
    assert by_job["job_test"] == by_job["job_reference"] == by_job["job_realism"] == {"test"}
