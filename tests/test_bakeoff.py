"""The bake-off (scripts/bakeoff.py): identical generator losses, budget and data order for every
contestant, and the --quick rehearsal end to end (every contestant and seed, finite measures, plot)."""

from __future__ import annotations

import importlib.util
import json
import math
import os

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT

from sfd_lab.bakeoff import contestants as bo


def test_parser_lists_every_contestant():
    from sfd_lab.bakeoff.cli import BAKEOFF_CONTESTANTS, bakeoff_command, bakeoff_parser

    assert BAKEOFF_CONTESTANTS == tuple(bo.CONTESTANTS)
    a = bakeoff_parser().parse_args(["--quick", "--seeds", "3", "4", "--out", "x y"])
    assert bakeoff_command(a) == "python scripts/bakeoff.py --out 'x y' --quick --seeds 3 4"


def test_settings_refuse_what_cannot_run():
    with pytest.raises(ValueError, match="unknown contestant"):
        bo.BakeoffSettings(contestants=("unet", "stylegan"))
    with pytest.raises(ValueError, match="distinct"):
        bo.BakeoffSettings(seeds=(1, 1))
    with pytest.raises(ValueError, match="VGGStyleDiscriminator"):
        bo.BakeoffSettings(gt_size=64)
    bo.BakeoffSettings(gt_size=64, contestants=("unet", "sfd"))  # without VGG any crop works


def test_every_contestant_gets_the_same_generator_losses_and_budget(tmp_path):
    s = bo.BakeoffSettings()
    clips = {"quality": "quality.pt", "random": "random.pt"}
    opts = {k: bo.stage2_options(c, s, clips, "stage1.pth", str(tmp_path / k)) for k, c in bo.CONTESTANTS.items()}
    losses = {k: bo.generator_losses(o) for k, o in opts.items()}
    assert all(v == {"pixel_opt": ("L1Loss", 1.0), "gan": pytest.approx(s.gan_weight)} for v in losses.values()), losses
    same = ("network_g", "scale")
    for key in ("optim_g", "ema_decay", "pixel_opt", "scheduler", "net_d_iters", "net_d_init_iters"):
        assert len({json.dumps(o["train"][key], sort_keys=True) for o in opts.values()}) == 1, key
    for key in same:
        assert len({json.dumps(o[key], sort_keys=True) for o in opts.values()}) == 1, key
    assert {o["path"]["pretrain_network_g"] for o in opts.values()} == {"stage1.pth"}
    assert {o["train"]["optim_d"]["lr"] for o in opts.values()} == {s.d_lr}
    # the host and discriminator are what differs
    assert {k: o["model_type"] for k, o in opts.items()} == {k: c.host for k, c in bo.CONTESTANTS.items()}
    assert opts["sfd"]["train"]["feat_gan_opt"]["loss_weight"] == opts["sfd"]["train"]["text_gan_opt"]["loss_weight"]
    assert opts["feat_d"]["train"].get("text_gan_opt") is None and not opts["feat_d"]["network_d"]["use_text"]
    assert opts["tg_d"]["train"].get("feat_gan_opt") is None and not opts["tg_d"]["network_d"]["use_feat"]
    assert opts["sfd_random"]["network_d"]["clip_pretrained"] == "random.pt"
    assert opts["patchgan"]["network_d"]["use_high_pass"] is False  # a plain 3-channel PatchGAN
    assert "gan_opt" not in opts["sfd"]["train"] and opts["unet"]["train"]["gan_opt"]["gan_type"] == "vanilla"


def test_data_order_depends_on_the_seed_only_and_pairs_stay_aligned():
    a = bo.data_order(20, 7, 4, seed=3, lr_size=32, lr_crop=16)
    assert a == bo.data_order(20, 7, 4, seed=3, lr_size=32, lr_crop=16)
    assert a != bo.data_order(20, 7, 4, seed=4, lr_size=32, lr_crop=16)
    first_epoch = [i for step in a[:5] for i in step["idx"]]
    assert sorted(first_epoch) == list(range(20))  # epochs of permutations: each sample once per epoch
    torch.manual_seed(0)
    hr = torch.rand(20, 3, 128, 128)
    lr = F.avg_pool2d(hr, 4)
    for step in a:
        batch = bo.make_batch(hr, lr, step, 16)
        assert batch["lq"].shape == (4, 3, 16, 16) and batch["gt"].shape == (4, 3, 64, 64)
        assert batch["lq"].is_contiguous() and batch["gt"].is_contiguous()
        torch.testing.assert_close(F.avg_pool2d(batch["gt"], 4), batch["lq"])  # flips/rotations applied to both
    with pytest.raises(ValueError, match="larger"):
        bo.data_order(4, 1, 1, 0, lr_size=16, lr_crop=32)


def test_jobs_must_be_positive(tmp_path):
    from sfd_lab.bakeoff.run import run_bakeoff

    with pytest.raises(ValueError, match="--jobs"):
        run_bakeoff(str(tmp_path), quick=True, jobs=0)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def test_quick_bakeoff_end_to_end(quality_clip_file, tmp_path):
    """`python scripts/bakeoff.py --quick` (as `make test` rehearses it): every contestant and seed
    trained from the one stage-1 generator, evaluated with finite measures; plot, montage, ranking."""
    spec = importlib.util.spec_from_file_location("bakeoff_script", os.path.join(ROOT, "scripts", "bakeoff.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out, results = tmp_path / "bakeoff", tmp_path / "results"
    argv = ["--quick", "--out", str(out), "--clip-pretrained", quality_clip_file, "--results-dir", str(results)]
    argv += ["--jobs", "2"]  # the full run's form: fine-tuning runs in two spawned worker processes
    assert script.main(argv) == 0
    r = json.loads((out / "report.json").read_text())
    seeds = [str(s) for s in r["settings"]["seeds"]]
    assert r["machine"]["jobs"] == 2 and r["command"].endswith("--jobs 2")
    assert r["quick"] and len(seeds) >= 2 and list(r["summary"]["contestants"]) == list(bo.CONTESTANTS)
    for key, c in r["summary"]["contestants"].items():
        assert list(c["per_seed"]) == seeds, key
        for m in ("psnr", "ssim", "niqe", "judge"):
            assert all(_finite(c["per_seed"][s][m]) for s in seeds), (key, m)
            assert _finite(c[m]["mean"]) and _finite(c[m]["std"]) and c[m]["min"] <= c[m]["mean"] <= c[m]["max"]
    refs = r["summary"]["references"]
    assert refs["hr"]["niqe"] < refs["bicubic"]["niqe"] and refs["hr"]["judge"] > refs["bicubic"]["judge"]
    assert set(r["summary"]["vs_sfd"]) == set(bo.CONTESTANTS) - {"sfd"}

    # every run started from the stage-1 weights and trained; seeds give different discriminators
    stage1 = torch.load(r["stage1"]["checkpoint"], map_location="cpu", weights_only=True)["params"]
    for key, c in r["contestants"].items():
        d_first = None
        for seed in seeds:
            run = c["runs"][seed]
            g = torch.load(run["net_g"], map_location="cpu", weights_only=True)["params"]
            assert g.keys() == stage1.keys() and any(not torch.equal(g[k], stage1[k]) for k in g), (key, seed)
            d = torch.load(run["net_d"], map_location="cpu", weights_only=True)["params"]
            if d_first is None:
                d_first = d
            else:
                assert any(v.is_floating_point() and not torch.equal(v, d_first[k]) for k, v in d.items()), (
                    f"{key}: seeds {seeds[0]} and {seed} trained identical discriminators"
                )
    names = os.listdir(out / "sr" / "hr")
    assert names and all(n.startswith(bo.EVAL_PHOTOS) for n in names)  # evaluated on held-out photos only

    rk = r["ranking"]["degradations"]
    assert set(rk) == {"downup", "blur", "noise", "jpeg"}
    for row in rk.values():
        assert len(row["sfd_q"]["per_seed"]) == len(seeds) and _finite(row["sfd_q"]["mean"])
        assert _finite(row["niqe"]) and _finite(row["fixed_q"]) and _finite(row["zero_shot"])

    for png in (out / "pd.png", out / "montage.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    stem = f"bakeoff-{r['date']}-quick"
    assert sorted(os.listdir(results)) == sorted(f"{stem}{x}" for x in (".md", ".json", "-pd.png", "-montage.png"))
    md = (results / f"{stem}.md").read_text()
    assert "QUICK REHEARSAL" in md and f"({stem}-pd.png)" in md and r["command"] in md
    assert all(c.label in md for c in bo.CONTESTANTS.values())
