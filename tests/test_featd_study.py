"""The Feat-D design study (sfd_lab.bakeoff.featd_*): its variants reach the discriminator and the loss,
its runs are kept and reused, its decision rule does what its text says, and --quick runs end to end on
the scikit-image fallback photos (validation split only)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sfd_lab.bakeoff import featd_cli
from sfd_lab.bakeoff import featd_study as fs


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
        ({"gt_size": 130}, "multiple of 4"),
        ({"head_weight": 0.0}, "head_weight > 0"),
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
    assert base["network_d"]["feat_norm"] == "rms"  # the study's baseline is named, whatever the arch default
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
    report, on the validation split; a rerun runs no task and gives the same table."""
    from conftest import photo_tensor

    from sfd_arch.clip_provenance import prepare_tiny_clip
    from sfd_lab.bakeoff import featd_run

    clip = prepare_tiny_clip(str(tmp_path), "quality-tiny-rn", photo_tensor("astronaut", 64, batch=8))
    out, results = str(tmp_path / "study"), str(tmp_path / "results")
    report = featd_run.run_study(out, quick=True, jobs_n=1, clip_pretrained=clip, results_dir=results, log=print)
    s = fs.StudySettings(**featd_run.QUICK)
    runs = {k: v for k, v in report["runs"].items() if k.startswith("run-")}
    assert len(runs) == len(s.seeds) * len(s.variants) * len(s.configs) == 12
    assert set(report["controls"]) == {"l1", "tg_d"} and report["controls"]["l1"]["d_acc_probe"] is None
    l1 = report["runs"]["control-l1-s0"]
    assert l1["network_d"] == {} and l1["generator_losses"]["feat_gan_opt"] is None
    assert report["runs"]["control-tg_d-s1"]["network_d"]["use_feat"] is False
    assert set(report["table"]["feat"]["default"]["vs_control"]) == {"psnr", "niqe", "realism"}
    assert report["photos"]["source"].startswith("scikit-image fallback")
    assert [v["name"] for v in report["photos"]["val"]] == ["camera", "coins"]  # the validation split, not test
    assert set(report["table"]) == {"feat", "sfd"}
    row = report["table"]["sfd"]["norm_channel"]
    assert set(row["vs_default"]) == {"psnr", "niqe", "realism"} and row["mean"]["niqe"]["n_seeds"] == 2
    assert np.array(report["grids"]["feat"]["default"]["realism"]).shape == (2, 2)  # scenes x seeds
    assert set(report["references"]) == set(fs.REFERENCES) and "realism" in report["references"]["stage1"]
    assert "QUICK REHEARSAL" in open(report["files"]["results_md"], encoding="utf-8").read()
    run = report["runs"]["run-norm_channel-feat-s1"]
    assert run["network_d"]["feat_norm"] == "channel" and set(run["per_image"]) == {"camera", "coins"}
    assert run["generator_losses"]["text_gan_opt"] is None and run["network_d"]["use_text"] is False
    monkeypatch.setattr(fs, "job_run", lambda **k: pytest.fail("a stored run was trained again"))
    again = featd_run.run_study(out, quick=True, jobs_n=1, clip_pretrained=clip, log=print)
    assert again["tasks_ran"] == 0 and again["table"] == json.loads(json.dumps(report["table"]))
    with pytest.raises(ValueError, match="other settings"):
        featd_run.run_study(out, fs.StudySettings(**{**featd_run.QUICK, "iters": 3}), quick=True, jobs_n=1)
