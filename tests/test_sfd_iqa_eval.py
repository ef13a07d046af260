"""SFD-IQA evaluation: inputs (folders, MOS tables, KonIQ-10k, LIVE Challenge), bad files, statistics."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import scipy.io
from conftest import photo
from scipy import stats

from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
from sfd_metric.sfd_iqa import SFDIQA
from sfd_tools.iqa.cli import sfd_iqa_eval_parser as build_parser
from sfd_tools.iqa.evaluate import main, run_eval
from sfd_tools.iqa.mos_data import InputError, read_koniq, read_livec, read_mos_table
from sfd_tools.iqa.stats import correlations, logistic4, logistic5


@pytest.fixture(scope="module")
def ckpt(tiny_clip_files, tmp_path_factory):
    """An (untrained) SFDDiscriminator state, BasicSR-wrapped, with the tiny CLIP loaded from a file."""
    import torch

    torch.manual_seed(0)
    disc = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=8)
    path = tmp_path_factory.mktemp("iqa_eval") / "net_d_0.pth"
    torch.save({"params": disc.state_dict()}, path)
    return str(path)


@pytest.fixture(scope="module")
def scorer(ckpt):
    return SFDIQA.from_checkpoint(ckpt, tile=64, device="cpu")


def write_rgb(path, rgb):
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


def graded_images(folder, n=6):
    """n 96x192 crops of held-out photos (two NIQE blocks), blurred more and more (img0..), as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        src = photo("chelsea" if i % 2 else "motorcycle_right")[40 + 10 * i : 136 + 10 * i, 60:252]
        img = cv2.GaussianBlur(src, (0, 0), 0.3 + 0.6 * i) if i else src
        names.append(f"img{i}.png")
        write_rgb(folder / names[-1], img)
    return names


def test_folder_with_bad_files_is_scored_and_skips_are_counted(scorer, tmp_path):
    folder = tmp_path / "imgs"
    graded_images(folder, 2)
    rgb = photo("chelsea")[:80, :100]
    cv2.imwrite(str(folder / "deep16.png"), (rgb[..., ::-1].astype(np.uint16) * 257))
    cv2.imwrite(str(folder / "gray.png"), rgb[..., 0])
    cv2.imwrite(str(folder / "alpha.png"), np.dstack([rgb[..., ::-1], np.zeros(rgb.shape[:2], np.uint8)]))
    write_rgb(folder / "tiny.png", rgb[:12, :20])
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (folder / "truncated.jpg").write_bytes(cv2.imencode(".jpg", rgb)[1].tobytes()[:200])
    (folder / "notes.txt").write_text("not an image")
    s = run_eval(str(folder), out_dir=str(tmp_path / "out"), scorer=scorer, compare=("niqe",), progress=False)
    scored = {r["name"]: r for r in s["images"]}
    assert set(scored) == {"img0.png", "img1.png", "deep16.png", "gray.png", "alpha.png", "tiny.png"}
    assert s["n_skipped"] == 3 and {x["name"] for x in s["skipped"]} == {"corrupt.png", "truncated.jpg", "notes.txt"}
    assert scored["deep16.png"]["q"] == pytest.approx(scored["alpha.png"]["q"], abs=1e-6)  # 16-bit scaled
    assert all(0 <= r[c] <= 1 for r in s["images"] for c in ("q", "q_feat", "q_text"))
    assert np.isnan(scored["tiny.png"]["niqe"]) and "two 96x96 blocks" in scored["tiny.png"]["niqe_error"]
    assert np.isfinite(scored["img0.png"]["niqe"])
    n_niqe = sum(np.isfinite(r["niqe"]) for r in s["images"])
    assert s["n_scored_by"] == {"sfd_iqa": 6, "niqe": n_niqe} and n_niqe < 6  # speed counts scored images only
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"niqe could not score {6 - n_niqe} of 6 images" in report
    with open(tmp_path / "out" / "scores.csv") as f:
        assert len(list(csv.DictReader(f))) == 6
    saved = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert saved["n_skipped"] == 3 and len(saved["images"]) == 6
    assert "corrupt.png" in (tmp_path / "out" / "report.md").read_text()


def test_empty_folder_and_missing_mos_column_are_errors(ckpt, scorer, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no files"):
        run_eval(str(tmp_path / "empty"), scorer=scorer, progress=False)
    assert main([str(tmp_path / "empty"), "-c", ckpt, "--quiet"]) == 2
    assert "no files" in capsys.readouterr().err
    graded_images(tmp_path / "imgs", 1)
    (tmp_path / "m.csv").write_text("image_name,quality\nimg0.png,3.0\n")
    with pytest.raises(InputError, match="MOS column"):
        run_eval(str(tmp_path / "imgs"), mos=str(tmp_path / "m.csv"), scorer=scorer, progress=False)
    with pytest.raises(InputError, match="'mean' is not in the table"):
        read_mos_table(str(tmp_path / "m.csv"), mos_col="mean")
    (tmp_path / "bad.csv").write_text("image_name,MOS\nimg0.png,good\n")
    with pytest.raises(InputError, match="not a number"):
        read_mos_table(str(tmp_path / "bad.csv"))
    unreadable = tmp_path / "junk"
    unreadable.mkdir()
    (unreadable / "a.png").write_text("text")
    with pytest.raises(InputError, match="no image"):
        run_eval(str(unreadable), scorer=scorer, out_dir=str(tmp_path / "o"), progress=False)


def test_correlations_match_scipy_on_a_hand_made_mos_file(scorer, tmp_path):
    names = graded_images(tmp_path / "imgs", 6)
    mos = [4.5, 3.9, 3.1, 3.3, 2.0, 1.2]
    lines = ["file\tmean_score"] + [f"{n}\t{m}" for n, m in zip(names, mos)]
    (tmp_path / "scores.tsv").write_text("\n".join(lines[::-1][-1:] + lines[1:][::-1]) + "\n")  # shuffled rows
    s = run_eval(
        str(tmp_path / "imgs"),
        out_dir=str(tmp_path / "out"),
        scorer=scorer,
        mos=str(tmp_path / "scores.tsv"),
        name_col="file",
        mos_col="mean_score",
        logistic=(4, 5),
        compare=("niqe",),
        progress=False,
    )
    by_name = {r["name"]: r for r in s["images"]}
    assert [by_name[n]["mos"] for n in names] == mos  # scores matched to the right MOS
    q = np.array([by_name[n]["q"] for n in names])
    c = s["correlations"]["q"]
    assert c["n"] == 6
    assert c["srocc"] == pytest.approx(stats.spearmanr(q, mos)[0], abs=1e-9)
    assert c["krcc"] == pytest.approx(stats.kendalltau(q, mos)[0], abs=1e-9)
    assert c["plcc_raw"] == pytest.approx(stats.pearsonr(q, mos)[0], abs=1e-9)
    niqe = np.array([by_name[n]["niqe"] for n in names])
    assert s["correlations"]["niqe"]["srocc"] == pytest.approx(stats.spearmanr(-niqe, mos)[0], abs=1e-9)
    assert (tmp_path / "out" / "scatter.png").stat().st_size > 1000
    with open(tmp_path / "out" / "scores.csv") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert float(rows["img3.png"]["q"]) == pytest.approx(by_name["img3.png"]["q"], abs=1e-6)


def test_logistic_fits_recover_a_logistic_relation():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 1, 60))
    y = logistic4(x, 90.0, 10.0, 0.5, 0.08) + rng.normal(0, 0.5, x.shape)
    c = correlations(x, y, (4, 5))
    assert c["plcc_raw"] < 0.97
    assert c["plcc_logistic4"] > 0.999 and c["plcc_logistic5"] > 0.999
    assert c["rmse_logistic4"] < 1.0
    decreasing = correlations(-x, y, (4,))  # a lower-is-better score fits just as well
    assert decreasing["srocc"] == pytest.approx(-c["srocc"]) and decreasing["plcc_logistic4"] > 0.999
    y5 = logistic5(x, 50.0, 12.0, 0.4, 20.0, 40.0)
    assert correlations(x, y5, (5,))["plcc_logistic5"] > 0.9999
    assert np.isnan(correlations([1, 2], [3, 4])["srocc"])  # too few pairs


def test_koniq_layout(scorer, tmp_path):
    root = tmp_path / "koniq10k"
    names = graded_images(root / "1024x768", 5)
    header = '"image_name","c1","c2","c3","c4","c5","c_total","MOS","SD","MOS_zscore"'
    rows = [f'"{n}",0,1,2,3,4,10,{4.0 - 0.5 * i},0.5,{70 - 8 * i}' for i, n in enumerate(names)]
    (root / "koniq10k_scores_and_distributions.csv").write_text("\n".join([header, *rows]) + "\n")
    items = read_koniq(str(root))
    assert [it.mos for it in items] == [4.0, 3.5, 3.0, 2.5, 2.0]
    assert items[0].path == str(root / "1024x768" / "img0.png")
    s = run_eval(str(root), scorer=scorer, out_dir=str(tmp_path / "out"), progress=False, plot=False)
    assert s["layout"] == "koniq" and s["correlations"]["q"]["n"] == 5


def test_live_challenge_layout(tmp_path):
    root = tmp_path / "ChallengeDB_release"
    (root / "Data").mkdir(parents=True)
    names = [f"t{i}.bmp" for i in range(1, 8)] + ["10.bmp", "11.bmp", "12.bmp"]
    cells = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        cells[i, 0] = np.array([n])
    scipy.io.savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cells})
    mos = np.arange(len(names), dtype=np.float64)[None] * 10
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos})
    items = read_livec(str(root))
    assert [it.name for it in items] == ["10.bmp", "11.bmp", "12.bmp"] and [it.mos for it in items] == [70, 80, 90]
    assert items[0].path == str(root / "Images" / "10.bmp")
    assert len(read_livec(str(root), include_train=True)) == 10
    with pytest.raises(InputError, match="AllImages_release.mat. does not exist"):
        read_livec(str(tmp_path))


def test_single_image_cli_and_help(ckpt, tmp_path, capsys):
    write_rgb(tmp_path / "one.png", photo("chelsea")[:70, :90])
    assert main([str(tmp_path / "one.png"), "-c", ckpt, "--tile", "64", "-o", str(tmp_path / "o"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Scores: Q" in out and "scores.json" in out
    text = build_parser().format_help()
    for word in ("KonIQ-10k", "LIVE Challenge", "alpha channel is dropped", "--compare", "--mos-col", "16-bit"):
        assert word in text, word


def test_bad_command_line_values_are_refused(ckpt, tmp_path, capsys):
    img = tmp_path / "p.png"
    write_rgb(img, photo("chelsea")[:64, :64])
    for flag in ("--tile", "--limit", "--stride", "--batch-size"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([str(img), "-c", ckpt, flag, "0"])
        assert "must be a positive integer" in capsys.readouterr().err
    assert main([str(img), "-c", ckpt, "--dataset", "koniq", "-o", str(tmp_path / "o"), "--quiet"]) == 2
    assert "not a text (UTF-8) table" in capsys.readouterr().err


def test_cuda_request_without_cuda_falls_back_to_cpu(ckpt):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: nothing to fall back from")
    with pytest.warns(UserWarning, match="CUDA is not available"):
        s = SFDIQA.from_checkpoint(ckpt, tile=64, device="cuda")
    assert s.device.type == "cpu" and 0.0 <= s.score(photo("chelsea")[:64, :64]).q <= 1.0
