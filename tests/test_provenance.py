"""Numbers with provenance: checkpoints name the CLIP weights by absolute path and hash, a moved file
is found by its hash, stand-in weights say so, the scripts' SFD-IQA equals validation's, and the
training log shows progress without a negative ETA or a duplicate final validation."""

from __future__ import annotations

import os
import shutil
import warnings

import cv2
import open_clip
import pytest
import torch
from basicsr.models import build_model
from conftest import photo, sfd_opt

from sfd_arch.clip_backbone import CLIPWeightsNotFound
from sfd_arch.clip_provenance import file_sha256, read_marker, save_random_calibrated, weights_record
from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
from sfd_metric.sfd_iqa import SFDIQA
from sfd_utils import progress

TINY = {"clip_model": "tiny-rn", "n_ctx": 4, "feat_mid_channels": 8}


@pytest.fixture()
def stand_in(tmp_path) -> str:
    torch.manual_seed(0)
    path = str(tmp_path / "clip" / "tiny_random_calibrated.pt")
    os.makedirs(os.path.dirname(path))
    return save_random_calibrated(open_clip.create_model("tiny-rn", pretrained=None), path, seed=0)


def test_checkpoint_records_absolute_path_hash_and_stand_in(tmp_path, stand_in, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rel = os.path.relpath(stand_in)
    assert not os.path.isabs(rel)
    disc = SFDDiscriminator(clip_pretrained=rel, **TINY)
    cfg = disc.config
    assert os.path.isabs(cfg["clip_pretrained"]) and cfg["clip_pretrained"] == os.path.abspath(rel)
    assert cfg["clip_weights_sha256"] == file_sha256(stand_in) and cfg["clip_weights_size"] == os.path.getsize(stand_in)
    assert cfg["clip_weights_random_calibrated"] is True and "RANDOM-CALIBRATED" in disc.clip_description
    assert read_marker(stand_in)["seed"] == 0
    # an ordinary weights file is not a stand-in
    plain = str(tmp_path / "plain.pt")
    torch.save(open_clip.create_model("tiny-rn", pretrained=None).state_dict(), plain)
    assert weights_record(plain)["clip_weights_random_calibrated"] is False
    assert "pretrained weights" in SFDDiscriminator(clip_pretrained=plain, **TINY).clip_description


def _save_checkpoint(disc, folder) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "net_d_latest.pth")
    torch.save({"params": disc.state_dict()}, path)
    return path


def test_sfd_iqa_from_another_folder_and_after_the_weights_moved(tmp_path, stand_in, monkeypatch):
    monkeypatch.chdir(os.path.dirname(stand_in))
    torch.manual_seed(1)
    disc = SFDDiscriminator(clip_pretrained=os.path.basename(stand_in), **TINY)  # relative, as in a recipe
    ckpt = _save_checkpoint(disc, str(tmp_path / "run" / "models"))
    img = photo("chelsea")[:128, :128]
    monkeypatch.chdir(tmp_path / "run")  # another working directory: the recorded path is absolute
    before = SFDIQA.from_checkpoint(ckpt, tile=64).score(img).q
    # the weights move next to the checkpoint: found again by their hash
    moved = tmp_path / "run" / "pretrained_models"
    moved.mkdir()
    shutil.move(stand_in, moved / "renamed.pt")
    with pytest.warns(UserWarning, match="moved"):
        scorer = SFDIQA.from_checkpoint(ckpt, tile=64)
    assert scorer.score(img).q == pytest.approx(before, abs=1e-6)
    prov = scorer.provenance()
    assert prov["clip_weights_sha256"] == file_sha256(str(moved / "renamed.pt")) and prov["tile"] == 64
    assert prov["checkpoint_sha256"] == file_sha256(ckpt) and prov["clip_weights_random_calibrated"] is True
    # gone everywhere: one clear error naming the hash and the option
    shutil.move(str(moved / "renamed.pt"), str(tmp_path / "elsewhere.pt"))
    with pytest.raises(CLIPWeightsNotFound, match=r"sha256 .*clip_pretrained"):
        SFDIQA.from_checkpoint(ckpt, tile=64)
    # given explicitly: used
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same hash: no warning
        scorer = SFDIQA.from_checkpoint(ckpt, tile=64, clip_pretrained=str(tmp_path / "elsewhere.pt"))
    assert scorer.score(img).q == pytest.approx(before, abs=1e-6)


def test_validation_and_evaluate_sr_give_the_same_sfd_iqa(tmp_path, tiny_clip_files):
    """SFDModel's validation (checkpoint: current) and evaluate_sr.py on the saved validation images
    with the saved net_d score the same images identically."""
    from sfd_tools.sr.evaluation import evaluate_folders

    hr_dir, lr_dir = tmp_path / "val" / "hr", tmp_path / "val" / "lr"
    hr_dir.mkdir(parents=True)
    lr_dir.mkdir(parents=True)
    for i, name in enumerate(("chelsea", "motorcycle_right")):
        hr = photo(name)[64 * i : 64 * i + 128, 100:228]
        cv2.imwrite(str(hr_dir / f"{name}.png"), cv2.cvtColor(hr, cv2.COLOR_RGB2BGR))
        lr = cv2.resize(hr, (32, 32), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(lr_dir / f"{name}.png"), cv2.cvtColor(lr, cv2.COLOR_RGB2BGR))
    opt = sfd_opt(tiny_clip_files["tiny-rn"], str(tmp_path / "exp"))
    opt["datasets"] = {"train": {"gt_size": 64}}  # the training crop: SFD-IQA's tile in both paths
    opt["val"] = {
        "save_img": True,
        "metrics": {"sfd_iqa": {"type": "calculate_sfd_iqa", "checkpoint": "current", "crop_border": 0}},
    }
    model = build_model(opt)
    from basicsr.data import build_dataloader, build_dataset

    val_set = build_dataset(
        {
            "name": "v",
            "type": "PairedImageDataset",
            "dataroot_gt": str(hr_dir),
            "dataroot_lq": str(lr_dir),
            "io_backend": {"type": "disk"},
            "phase": "val",
            "scale": 4,
        }  # fmt: skip
    )
    loader = build_dataloader(val_set, {"phase": "val"}, num_gpu=0, dist=False)
    model.validation(loader, 3, None, save_img=True)
    logged = model.metric_results["sfd_iqa"]
    model.save(0, 3)
    flat = tmp_path / "sr"  # BasicSR writes visualization/<name>/<name>_<iter>.png: gather them
    flat.mkdir()
    for sub in (tmp_path / "exp" / "visualization").iterdir():
        for f in sub.iterdir():
            shutil.copy(f, flat / f.name)
    result = evaluate_folders(
        str(flat),
        str(hr_dir),
        metrics=["sfd_iqa"],
        sr_regex=r"_3",
        sfd_iqa_checkpoint=str(tmp_path / "exp" / "models" / "net_d_3.pth"),
        progress=False,
    )
    assert result["count"] == 2
    assert result["mean"]["sfd_iqa"] == pytest.approx(logged, abs=1e-5)
    assert result["settings"]["sfd_iqa"]["tile"] == 64


# -- training feedback -------------------------------------------------------------------------------
def test_progress_eta_is_never_negative_and_shows_percent(monkeypatch):
    clock = iter([100.0, 160.0, 400.0])
    monkeypatch.setattr(progress.time, "time", lambda: next(clock))
    p = progress.Progress("run", start_iter=0, total_iter=300)
    assert p.summary(150).startswith(" 50.0%, 2.50 it/s, eta 0:01:00")
    assert p.summary(300).endswith("eta 0:00:00")  # BasicSR printed -1 day here


def test_final_validation_is_not_repeated_and_keeps_its_label():
    calls = []

    class Model:
        def optimize_parameters(self, it):
            pass

        def validation(self, loader, it, tb, save_img=False):
            calls.append(it)

    m = progress.attach(Model(), {"train": {"total_iter": 300}})
    m.validation(None, 150, None)
    m.validation(None, 300, None)
    m.validation(None, 301, None)  # BasicSR's call after the loop
    assert calls == [150, 300]
    m2 = progress.attach(Model(), {"train": {"total_iter": 300}})
    calls.clear()
    m2.validation(None, 301, None)  # val_freq did not divide total_iter: runs once, labelled 300
    assert calls == [300]


def test_heartbeat_logs_after_silence(monkeypatch, caplog):
    import logging

    now = [0.0]
    monkeypatch.setattr(progress.time, "time", lambda: now[0])
    p = progress.Progress("heartbeat-run", 0, 10)
    monkeypatch.setattr(progress, "_current", p)
    logger = logging.getLogger("basicsr")
    logger.propagate = True
    with caplog.at_level(logging.INFO, logger="basicsr"):
        now[0] = 5.0
        progress.heartbeat(1)
        assert "heartbeat-run"[:5] not in caplog.text
        now[0] = 5.0 + progress.HEARTBEAT_S
        progress.heartbeat(2)
    assert "iter 2/10" in caplog.text and "it/s" in caplog.text
