"""The Feat-D design study (sfd_lab.bakeoff.featd_*): its variants reach the discriminator and the loss,
its runs are kept and reused, its decision rule does what its text says, and --quick runs end to end on
the scikit-image fallback photos (validation split only)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from sfd_lab.bakeoff import featd_cli
from sfd_lab.bakeoff import featd_study as fs
from sfd_lab.photos import fallback_set


def test_cli_lists_are_the_modules():
    assert featd_cli.FEATD_VARIANTS == tuple(fs.VARIANTS)
    assert featd_cli.FEATD_CONFIGS == tuple(fs.CONFIGS)


def test_command_line_reproduces_the_options_given():
    a = featd_cli.featd_parser().parse_args(["--seeds", "0", "3", "--variants", "norm_none", "--jobs", "1"])
    assert featd_cli.featd_command(a) == "python scripts/featd_study.py --seeds 0 3 --variants norm_none --jobs 1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variants": ("norm_none",)}, "must include 'default'"),
        ({"variants": ("default", "bogus")}, r"unknown variant/config \['bogus'\]"),
        ({"seeds": (0, 0)}, "distinct"),
        ({"gt_size": 130}, "multiples of 4"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fs.StudySettings(**kwargs)


@pytest.mark.parametrize("variant", list(fs.VARIANTS))
@pytest.mark.parametrize("config", list(fs.CONFIGS))
def test_each_variant_changes_one_factor_at_the_same_per_head_weight(variant, config, tmp_path):
    s = fs.StudySettings()
    opt = fs.stage2_options(variant, config, 1, s, "clip.pt", "stage1.pth", str(tmp_path))
    base = fs.stage2_options("default", config, 1, s, "clip.pt", "stage1.pth", str(tmp_path))
    _, _, net_d, loss = fs.VARIANTS[variant]
    changed_d = {k for k in opt["network_d"] if opt["network_d"][k] != base["network_d"].get(k)}
    changed_loss = {
        k
        for k in opt["train"]["feat_gan_opt"]
        if opt["train"]["feat_gan_opt"][k] != base["train"]["feat_gan_opt"].get(k)
    }
    assert changed_d == set(net_d) and changed_loss == set(loss)
    assert opt["network_d"]["use_text"] is (config == "sfd") and opt["network_d"]["use_feat"] is True
    assert opt["train"]["feat_gan_opt"]["loss_weight"] == s.head_weight
    if config == "sfd":
        assert opt["train"]["text_gan_opt"] == {
            "type": "SFDGANLoss",
            "gan_type": "vanilla",
            "loss_weight": s.head_weight,
        }
    else:
        assert not opt["train"].get("text_gan_opt")
    assert opt["network_d"]["feat_mid_channels"] == s.feat_mid and opt["train"]["optim_d"]["lr"] == s.d_lr


def test_every_variant_builds_a_discriminator(tiny_clip_files, tmp_path):
    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
    from sfd_loss.sfd_loss import SFDGANLoss

    for variant in fs.VARIANTS:
        opt = fs.stage2_options(
            variant, "sfd", 0, fs.StudySettings(), tiny_clip_files["tiny-rn"], "s.pth", str(tmp_path)
        )
        net_d = {k: v for k, v in opt["network_d"].items() if k != "type"}
        disc = SFDDiscriminator(**{**net_d, "clip_model": "tiny-rn"})
        assert disc.config["feat_layers"] == (net_d.get("feat_layers") or [1, 2, 3])
        SFDGANLoss(**{k: v for k, v in opt["train"]["feat_gan_opt"].items() if k != "type"})


def test_training_tiles_spread_over_each_photo():
    photos = fallback_set("test").train[:2]
    hr, lr, scenes = fs.training_tiles(photos, 64, 3)
    assert hr.shape == (6, 3, 64, 64) and lr.shape == (6, 3, 16, 16) and len(scenes) == 6
    first = photos[0].rgb()
    np.testing.assert_array_equal((hr[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), first[:64, :64])
    with pytest.raises(ValueError, match="no 4096² tile"):
        fs.training_tiles(photos, 4096, 3)


def test_a_stored_run_is_reused_and_one_of_other_settings_refused(tmp_path):
    s = fs.StudySettings()
    fs._write_json(str(tmp_path / "runs" / "default-feat-seed0.json"), {"settings": s.training_key(), "x": 1})
    assert fs.load_run(str(tmp_path), "default-feat-seed0", s)["x"] == 1
    assert fs.load_run(str(tmp_path), "default-sfd-seed0", s) is None
    more_seeds = fs.StudySettings(seeds=(0, 1, 2), variants=("default", "norm_none"))
    assert fs.load_run(str(tmp_path), "default-feat-seed0", more_seeds)["x"] == 1  # the lists may grow
    with pytest.raises(ValueError, match="made with other settings"):
        fs.load_run(str(tmp_path), "default-feat-seed0", fs.StudySettings(iters=200))


def _row(psnr: float, niqe: float, realism: float, verdicts: dict) -> dict:
    vs = {
        "psnr": {"delta": psnr, "verdict": verdicts.get("psnr", "no difference shown")},
        "niqe": {"delta": niqe, "verdict": verdicts.get("niqe", "no difference shown")},
        "realism": {"delta": realism, "verdict": verdicts.get("realism", "no difference shown")},
    }
    return {"vs_default": vs}


def test_decision_rule_as_written():
    from sfd_lab.bakeoff.featd_report import decide

    table = {
        "feat": {
            "default": {"vs_default": {}},
            "a": _row(-0.05, -1.0, -0.02, {"niqe": "A better"}),
            "b": _row(-0.30, -1.0, -0.10, {"niqe": "A better", "realism": "A better"}),  # too much PSNR
            "c": _row(0.0, -0.5, -0.05, {"realism": "A better"}),
            "d": _row(0.0, 0.4, -0.05, {"realism": "A better", "niqe": "B better"}),  # worse on NIQE
            "e": _row(0.0, -0.1, 0.0, {}),
        },
        "sfd": {
            "default": {"vs_default": {}},
            "a": _row(0.0, -0.2, -0.01, {}),
            "b": _row(0.0, -0.2, -0.01, {}),
            "c": _row(-0.02, -0.3, -0.04, {}),
            "d": _row(0.0, 0.0, 0.0, {}),
            "e": _row(0.0, 0.0, 0.0, {}),
        },
    }
    d = decide({"table": table})
    assert {v: x["wins"] for v, x in d["variants"].items()} == {
        "a": True,
        "b": False,
        "c": True,
        "d": False,
        "e": False,
    }
    assert d["variants"]["b"]["psnr_beyond_margin"] == ["feat -0.30 dB"]
    assert d["variants"]["d"]["worse"] == ["niqe in feat"]
    assert d["winner"] == "c"  # the larger realism gain in Feat-D + TG-D
    assert decide({"table": {"feat": {"default": {}, "e": _row(0, 0, 0, {})}}})["winner"] is None


def test_quick_study_runs_end_to_end_and_resumes(tmp_path, monkeypatch):
    """--quick on the scikit-image fallback photos: every run, the references, the realism tests and the
    report; a rerun trains nothing and gives the same table."""
    from conftest import photo_tensor

    from sfd_arch.clip_provenance import prepare_tiny_clip
    from sfd_lab.bakeoff import featd_run

    clip = prepare_tiny_clip(str(tmp_path), "quality-tiny-rn", photo_tensor("astronaut", 64, batch=8))
    monkeypatch.setattr("sfd_lab.photos.photo_set", lambda **kw: fallback_set("test: not prepared"))
    out, results = str(tmp_path / "study"), str(tmp_path / "results")
    report = featd_run.run_study(out, quick=True, jobs=1, clip_pretrained=clip, results_dir=results, log=lambda m: None)
    s = fs.StudySettings(**featd_run.QUICK)
    assert report["runs_done_now"] == len(s.seeds) * len(s.variants) * len(s.configs) == 12
    assert report["photos"]["source"].startswith("scikit-image fallback")
    assert [v["name"] for v in report["photos"]["val"]] == ["camera", "coins"]  # the validation split, not test
    assert set(report["table"]) == {"feat", "sfd"}
    row = report["table"]["sfd"]["norm_channel"]
    assert set(row["vs_default"]) == {"psnr", "niqe", "realism"} and row["mean"]["niqe"]["n_seeds"] == 2
    assert np.array(report["grids"]["feat"]["default"]["realism"]).shape == (2, 2)  # scenes x seeds
    assert set(report["references"]) == {"hr", "bicubic", "stage1"} and "realism" in report["references"]["stage1"]
    assert "QUICK REHEARSAL" in open(report["files"]["results_md"], encoding="utf-8").read()
    with open(os.path.join(out, "runs", "norm_channel-feat-seed1.json"), encoding="utf-8") as f:
        run = json.load(f)
    assert run["network_d"]["feat_norm"] == "channel" and [i["name"] for i in run["images"]] == ["camera", "coins"]
    monkeypatch.setattr(fs, "finetune", lambda *a: pytest.fail("a stored run was trained again"))
    monkeypatch.setattr("sfd_lab.bakeoff.realism.realism_test", lambda *a, **k: pytest.fail("realism test again"))
    again = featd_run.run_study(out, quick=True, jobs=1, clip_pretrained=clip, log=lambda m: None)
    assert again["runs_done_now"] == 0 and again["table"] == json.loads(json.dumps(report["table"]))
