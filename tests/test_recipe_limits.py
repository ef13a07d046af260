"""Bounded recipes and safe command lines, piece by piece (issue 28): the YAML limits and refusals of
sfd_utils.recipe, the command line of sfd_utils.train_command (abbreviations, --force_yml, names,
output folders, basicsr handed the options dict), the ranges and machine checks of
sfd_utils.recipe_values, the file checks of sfd_utils.options_check and the data checks of
sfd_utils.train_data. The whole launcher under the same inputs: tests/test_recipe_mutations.py."""

from __future__ import annotations

import os
import sys
from collections import OrderedDict

import cv2
import numpy as np
import pytest
from conftest import ROOT

import basicsr  # noqa: F401  (the registries, with the plugin)
from sfd_utils import recipe_values
from sfd_utils.options_check import check_options
from sfd_utils.recipe import MAX_DEPTH, MAX_NODES, MAX_RECIPE_BYTES, RecipeError, load_recipe, parse_recipe
from sfd_utils.recipe_check import _Checker, check_recipe
from sfd_utils.train_command import (
    CommandLineError,
    apply_force_yml,
    check_run_folder,
    confine_outputs,
    parse_command_line,
    refuse_abbreviations,
    run_name_problem,
    safe_parse_options,
)
from sfd_utils.train_data import DataError, NamedDataErrors, check_dataset, one_line

DEMO = os.path.join(ROOT, "options", "demo_SR_psnr_cpu.yml")


def refused(text: str) -> str:
    with pytest.raises(RecipeError) as err:
        parse_recipe(text, "r.yml")
    assert "\n" not in str(err.value)
    return str(err.value)


# -- the loader's limits ----------------------------------------------------------------------------------
def test_nesting_is_bounded_before_the_c_loader_recurses():
    nested = lambda depth: "a: " + "[" * depth + "]" * depth + "\n"  # noqa: E731
    assert parse_recipe(nested(MAX_DEPTH - 2), "r.yml")["a"] is not None
    assert "nested more than 64 levels" in refused(nested(MAX_DEPTH + 1))
    assert "nested more than 64 levels" in refused(nested(25_000))  # segfaulted the C loader before


def test_alias_expansion_is_counted():
    laughs = "l0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 7)
    )
    assert f"more than {MAX_NODES} values once aliases are expanded" in refused(laughs)
    small = "b: &b {lr: 1}\nc: *b\nd: *b\n"
    assert parse_recipe(small, "r.yml")["d"] == {"lr": 1}
    assert "refers to the node that contains it" in refused("a: &a [1, *a]\n")


def test_size_is_checked_before_reading(tmp_path):
    big = tmp_path / "big.yml"
    big.write_text("name: x\n" + "#" * MAX_RECIPE_BYTES + "\n")
    with pytest.raises(RecipeError, match=f"has {os.path.getsize(big)} bytes; the limit is {MAX_RECIPE_BYTES}"):
        load_recipe(str(big))
    with pytest.raises(RecipeError, match="not a regular file"):
        load_recipe("/dev/zero")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(RecipeError, match="not a regular file"):
        load_recipe(str(tmp_path / "fifo"))  # never opened: opening a FIFO blocks
    with pytest.raises(RecipeError, match="is a folder"):
        load_recipe(str(tmp_path))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("manual_seed: 2001-13-45\n", "r.yml:1: manual_seed: '2001-13-45' reads as a YAML date"),
        ("a:\n  b: 2001-12-14\n", "r.yml:2: a.b: '2001-12-14' reads as a YAML date"),
        ("train:\n  lr: !!float abc\n", "r.yml:2: train.lr: 'abc' cannot be read as !!float"),
        ("x: !!int 0xZZ\n", "r.yml:1: x: '0xZZ' cannot be read as !!int"),
        ("x: " + "9" * 5000 + "\n", "r.yml:1: x: '99999"),
        ("path:\n  5: x\n", "r.yml:2: a key under path is 5, not text"),
        ("datasets:\n  train:\n    7: x\n", "r.yml:3: a key under datasets.train is 7, not text"),
        ("train:\n  ~: 1\n", "r.yml:2: a key under train is null, not text"),
        ("name: a\nname: b\n", "r.yml:2: name is given twice (first at line 1)"),
        ("x: !!binary aGk=\n", "r.yml:1: refused tag !!binary"),
        ("x: !!set {a}\n", "r.yml:1: refused tag !!set"),
        ("x: !!omap [a: 1]\n", "r.yml:1: refused tag !!omap"),
    ],
)
def test_values_that_are_not_recipe_data_name_their_key(text, expected):
    assert refused(text).startswith(expected)


def test_merge_keys_may_override_what_they_merge():
    opt = parse_recipe("b: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n", "r.yml")
    assert opt["c"] == {"x": 3, "y": 2}


# -- the command line --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "arg", ["--force_y", "--force", "--forc", "--fo", "--f", "--f=a=1", "--force=a=1", "-o", "-op", "--auto", "--ch"]
)
def test_every_abbreviation_is_refused_by_name(arg):
    with pytest.raises(CommandLineError, match="abbreviations are refused"):
        refuse_abbreviations(["-opt", "r.yml", arg])


def test_the_command_line_in_full():
    args, rest = parse_command_line(["-opt", "r.yml", "--force_yml", "a=1", "b.c=2", "--force_yml=d=3", "--check"])
    assert args.force_yml == ["a=1", "b.c=2", "d=3"] and args.check and rest == []
    args, _ = parse_command_line(["-opt", "r.yml", "--local-rank=3", "--launcher", "pytorch"])
    assert args.local_rank == 3 and args.launcher == "pytorch"
    with pytest.raises(CommandLineError, match="unrecognized arguments: --frobnicate"):
        parse_command_line(["-opt", "r.yml", "--frobnicate"])
    args, rest = parse_command_line(["-opt", "r.yml", "--frobnicate", "5"], strict=False)  # a fork's own flag
    assert rest == ["--frobnicate", "5"]
    with pytest.raises(CommandLineError, match="the following arguments are required: -opt"):
        parse_command_line([])


def test_force_yml_breakouts_never_reach_basicsr(tmp_path, monkeypatch):
    """basicsr's own parse_options, wrapped: the entries are applied here and basicsr reads the updated
    options where it would read the file; it never sees a --force_yml."""
    from basicsr.utils import options as bo

    original = bo.parse_options
    while hasattr(original, "__wrapped__"):
        original = original.__wrapped__
    parse = safe_parse_options(original)
    sentinel = tmp_path / "pwned"
    argv = ["train.py", "-opt", DEMO, "--force_yml", "name=forced", "train:total_iter=7", "manual_seed=3"]
    monkeypatch.setattr(sys, "argv", argv)
    opt, args = parse(str(tmp_path), is_train=True)
    assert opt["name"] == "forced" and opt["train"]["total_iter"] == 7 and opt["manual_seed"] == 3
    assert opt["path"]["experiments_root"] == os.path.join(str(tmp_path), "experiments", "forced")
    assert args.force_yml is None and sys.argv == argv  # basicsr's parser saw none; the command line is kept
    breakout = f'name"];__import__("os").system("touch {sentinel}");opt["x=1'
    for entry in (breakout, "name=../escape", "manual_seed=-1"):
        monkeypatch.setattr(sys, "argv", ["train.py", "-opt", DEMO, "--force_yml", entry])
        with pytest.raises(RecipeError):
            parse(str(tmp_path), is_train=True)
    monkeypatch.setattr(sys, "argv", ["train.py", "-opt", DEMO, "--force", f'name"];open("{sentinel}","w");opt["x=1'])
    with pytest.raises(CommandLineError, match="--force: write the flag in full"):
        parse(str(tmp_path), is_train=True)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "is empty"),
        (".", "is . or .."),
        ("..", "is . or .."),
        ("../../victim", "holds a path separator"),
        ("/abs/victim", "holds a path separator"),
        ("a\\b", "holds a path separator"),
        ("x\x00y", "NUL or control character"),
        ("n" * 121, "has 121 characters; at most 120"),
        (" x", "starts or ends with a space"),
        (5, "expected text"),
    ],
)
def test_run_names_are_one_plain_folder_name(name, problem):
    assert problem in run_name_problem(name)


def test_output_folders_stay_under_the_root(tmp_path):
    root = str(tmp_path / "root")
    run = os.path.join(root, "experiments", "run")
    ok = {"path": {"experiments_root": run, "models": os.path.join(run, "models"), "pretrain_network_g": "/w.pth"}}
    confine_outputs(ok, root)
    for key, value in (("extra", "/elsewhere"), ("extra", os.path.join(root, "..", "x")), ("pretrain_netwrk_g", None)):
        with pytest.raises(RecipeError, match=f"path.{key}: "):
            confine_outputs({"path": {**ok["path"], key: value}}, root)
    check_run_folder(run, root, "experiments")
    for path in (root, os.path.join(root, "experiments", ".."), os.path.join(root, "tb_logger", "run"), "/tmp/run"):
        with pytest.raises(RecipeError, match="refusing to create or rename"):
            check_run_folder(path, root, "experiments")


# -- ranges and the machine --------------------------------------------------------------------------------
def refused_recipe(mutate) -> str:
    opt = load_recipe(DEMO)
    mutate(opt)
    with pytest.raises(RecipeError) as err:
        check_recipe(opt, "r.yml")
    return str(err.value)[len("r.yml: ") :]


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("manual_seed", 2**32, "manual_seed: 4294967296: must be at most 4294967295"),
        ("manual_seed", -1, "manual_seed: -1: must be at least 0"),
        ("train.total_iter", float("inf"), "train.total_iter: inf: expected a finite number"),
        ("train.total_iter", 1.5, "train.total_iter: 1.5: expected a whole number"),
        ("train.warmup_iter", None, "train.warmup_iter: null; expected a whole number"),
        ("datasets.train.dataset_enlarge_ratio", 0, "datasets.train.dataset_enlarge_ratio: 0: must be at least"),
        ("network_g.num_feat", 10**18, "network_g.num_feat: 1000000000000000000: no network size is near that"),
        ("train.optim_g.weight_decay", 1e308, "train.optim_g.weight_decay: 1e+308: must be at most 1"),
        ("train.optim_g.betas", [0.9, 1.5], "train.optim_g: Adam refuses these options: Invalid beta parameter"),
        ("datasets.train.batch_size_per_gpu", 10**6, "datasets.train.batch_size_per_gpu: 1000000: must be at most"),
        ("train.scheduler.milestones", [1.5], "train.scheduler.milestones[0]: 1.5: expected a whole number"),
        ("logger.save_checkpoint_freq", 2.5, "logger.save_checkpoint_freq: 2.5: expected a whole number"),
        ("name", "../x", "name: '../x' holds a path separator"),
    ],
)
def test_out_of_range_values_are_named(key, value, expected):
    def mutate(opt):
        *parents, last = key.split(".")
        node = opt
        for part in parents:
            node = node[part]
        node[last] = value

    assert refused_recipe(mutate).startswith(expected)


def test_the_machine_holds_the_run(monkeypatch):
    import torch

    opt = load_recipe(DEMO)
    checker = _Checker("r.yml")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe_values.check_machine(checker, opt)  # the demo fits any machine
    cases = [
        ({"num_gpu": 1}, "num_gpu: 1 but no CUDA device: set num_gpu: 0 or auto"),
        ({"datasets.train.num_worker_per_gpu": 48}, "48 loader workers on a machine with 2 CPU(s); at most 8"),
        ({"datasets.train.prefetch_mode": "cuda"}, "prefetch_mode: cuda needs a CUDA device"),
        ({"datasets.train.batch_size_per_gpu": 9000}, "9000 crops of 64x64 need about"),
    ]
    monkeypatch.setattr(recipe_values, "cpu_count", lambda: 2)
    monkeypatch.setattr(recipe_values, "available_memory", lambda: 1 << 30)
    for change, expected in cases:
        mutated = load_recipe(DEMO)
        for key, value in change.items():
            *parents, last = key.split(".")
            node = mutated
            for part in parents:
                node = node[part]
            node[last] = value
        with pytest.raises(RecipeError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            recipe_values.check_machine(_Checker("r.yml"), mutated)
    assert recipe_values.available_memory() > 0 and recipe_values.cpu_count() >= 1


# -- files and data ----------------------------------------------------------------------------------------
def test_files_are_what_they_are_read_as(tmp_path):
    import torch

    weights = tmp_path / "w.pth"
    torch.save({"params": {"w": torch.zeros(1)}}, weights)
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "meta.txt").write_bytes(b"")
    os.truncate(tmp_path / "meta.txt", (64 << 20) + 1)
    base = {"path": {"pretrain_network_g": str(weights)}, "datasets": {"train": {"dataroot_gt": str(tmp_path)}}}
    check_options(base)
    bad = [
        ({"path": {"pretrain_network_g": "/dev/zero"}}, "path.pretrain_network_g: '/dev/zero' is a device"),
        ({"path": {"pretrain_network_g": str(tmp_path)}}, "is a folder; expected a file"),
        ({"path": {"pretrain_network_g": str(tmp_path / "empty.pth")}}, "is empty"),
        ({"path": {"resume_state": str(tmp_path / "nope.state")}}, "path.resume_state: .* does not exist"),
        ({"datasets": {"train": {"dataroot_gt": str(weights)}}}, "is a file; expected a folder"),
        ({"datasets": {"train": {"meta_info_file": str(tmp_path / "meta.txt")}}}, "the limit is 67108864 bytes"),
        ({"datasets": {"val": {"name": "/dev/zero"}}}, "datasets.val.name: '/dev/zero' is a device"),
    ]
    for opt, expected in bad:
        with pytest.raises((ValueError, FileNotFoundError), match=expected):
            check_options(opt)


def test_the_first_pair_is_checked_and_items_name_their_files(tmp_path):
    for sub, size in (("gt", 64), ("lq", 16)):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / "a.png"), np.zeros((size, size, 3), np.uint8))

    class Pairs:
        paths = [{"gt_path": str(tmp_path / "gt" / "a.png"), "lq_path": str(tmp_path / "lq" / "a.png")}]

        def __len__(self):
            return 1

        def __getitem__(self, index):
            raise ValueError("Scale mismatches. GT (64, 64) is not 2x multiplication of LQ (16, 16).")

    opt = {"phase": "train", "name": "pairs", "scale": 4, "gt_size": 32, "io_backend": {"type": "disk"}}
    check_dataset(Pairs(), opt)
    with pytest.raises(DataError, match="scale 2 does not fit the first pair.*the pair is x4"):
        check_dataset(Pairs(), {**opt, "scale": 2})
    with pytest.raises(DataError, match=r"datasets.train.gt_size \(set pairs\): 128 is larger than the first GT"):
        check_dataset(Pairs(), {**opt, "gt_size": 128})
    with pytest.raises(DataError, match="no images found"):
        check_dataset([], opt)
    with pytest.raises(DataError, match=r"datasets.train \(set pairs\): gt_path: .*a.png.*: Scale mismatches"):
        NamedDataErrors(Pairs(), opt)[0]
    wrapped = "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
    wrapped += '  File "x.py", line 1\nsfd_utils.train_data.DataError: datasets.train: bad pair'
    assert one_line(DataError(wrapped)) == "datasets.train: bad pair"


def test_force_yml_apply_keeps_the_recipe():
    opt = OrderedDict(train=OrderedDict(total_iter=10), name="x")
    out = apply_force_yml(opt, ["train.total_iter=!!float 2e3", "name=none"])
    assert out["train"]["total_iter"] == 2000.0 and out["name"] is None and opt["train"]["total_iter"] == 10
