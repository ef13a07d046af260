"""Every malformed recipe gets one line before the model is built (sfd_utils.recipe_check): missing
sections and keys, wrong kinds of values, unknown ``type:`` names with the closest registered ones,
and what each model needs (SFDModel, SFDRealModel, CSUDModel, the stock GAN hosts with our
discriminator)."""

from __future__ import annotations

import copy
import os
from typing import Optional, Union

import pytest
from conftest import ROOT

import basicsr  # noqa: F401  (the registries, with the plugin)
from sfd_utils.option_kinds import kinds_of_annotation, signature_params
from sfd_utils.recipe import RecipeError, load_recipe
from sfd_utils.recipe_check import check_recipe

RECIPES = [f for f in sorted(os.listdir(os.path.join(ROOT, "options"))) if f.endswith(".yml") and "traiNNer" not in f]


def recipe(name: str = "train_SFD_RealRRDB_x4.yml") -> dict:
    return load_recipe(os.path.join(ROOT, "options", name))


def refused(opt: dict) -> str:
    with pytest.raises(RecipeError) as err:
        check_recipe(opt, "r.yml")
    message = str(err.value)
    assert "\n" not in message and message.startswith("r.yml: ")
    return message[len("r.yml: ") :]


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_recipes_pass(name):
    assert check_recipe(recipe(name), name) == []


def test_the_trainner_recipe_is_named_as_such():
    assert "traiNNer-redux recipe" in refused(recipe("train_SFD_traiNNer_ESRGAN_x4.yml"))


@pytest.mark.parametrize(
    "drop, expected",
    [
        (("logger",), "logger: missing"),
        (("path",), "path: missing"),
        (("datasets", "train"), "datasets.train: missing (the training data set)"),
        (("network_g",), "network_g: missing (the generator)"),
        (("train", "scheduler"), "train.scheduler: missing"),
        (("train", "total_iter"), "train.total_iter: missing"),
        (("logger", "print_freq"), "logger.print_freq: missing"),
        (("datasets", "train", "batch_size_per_gpu"), "datasets.train.batch_size_per_gpu: missing"),
        (("datasets", "train", "io_backend"), "datasets.train.io_backend: missing"),
        (("val", "val_freq"), "val.val_freq: missing"),
        (("train", "optim_d"), "train.optim_d: missing (SFDRealModel trains network_d with it)"),
        (("network_d",), "network_d: missing (SFDRealModel trains a discriminator)"),
        (("train", "text_gan_opt"), "train.text_gan_opt: missing while network_d.use_text is on"),
        (("jpeg_range2",), "jpeg_range2: missing (SFDRealModel synthesises LR with it)"),
        (("model_type",), "model_type: missing"),
    ],
)
def test_missing_sections_and_keys(drop, expected):
    opt = recipe()
    node = opt
    for key in drop[:-1]:
        node = node[key]
    del node[drop[-1]]
    assert refused(opt).startswith(expected)


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (("train", "optim_g", "lr"), "1e-4", "train.optim_g.lr: expected a number, got '1e-4' (a string) (YAML reads"),
        (("train", "total_iter"), "many", "train.total_iter: expected a number, got 'many'"),
        (("logger", "print_freq"), 0, "logger.print_freq: 0: must be at least 1"),
        (("datasets", "train", "gt_size"), 25.5, "datasets.train.gt_size: expected an integer or null (~), got 25.5"),
        (("network_d", "feat_mid_channels"), "wide", "network_d.feat_mid_channels: expected an integer, got 'wide'"),
        (("network_d", "use_text"), "false", "network_d.use_text: expected true or false, got 'false'"),
        (("network_g", "num_feat"), "64", "network_g.num_feat: expected a number, got '64'"),
        (("train", "pixel_opt", "loss_weight"), None, "train.pixel_opt.loss_weight: expected a number, got null"),
        (("train", "scheduler", "milestones"), 5, "train.scheduler.milestones: expected a list, got 5"),
        (("train", "optim_d", "betas"), "x", "train.optim_d.betas: expected a list, got 'x'"),
        (("train", "optim_d", "betas"), [0.9, 3.5], "train.optim_d: Adam refuses these options: Invalid beta"),
        (("resize_prob",), [0.2, 0.8], "resize_prob: [0.2, 0.8] (a list): expected a list of 3 numbers"),
        (("datasets", "train", "kernel_prob"), [0.5, 0.5], "datasets.train.kernel_prob: 2 probabilities for 6 kernels"),
        (("path",), "here", "path: expected a mapping of options, got 'here' (a string)"),
        (("train", "optim_g"), "Adam", "train.optim_g: expected a mapping of options, got 'Adam'"),
        (("num_gpu",), "all", "num_gpu: 'all': expected an integer or 'auto'"),
        (("train", "amp"), "fp8", "train.amp: 'fp8': expected null, bf16 or fp16"),
        (("val", "metrics", "psnr", "crop_border"), "4", "val.metrics.psnr.crop_border: expected an integer"),
    ],
)
def test_wrong_kinds_of_values(path, value, expected):
    opt = recipe()
    node = opt
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert refused(opt).startswith(expected)


@pytest.mark.parametrize(
    "path, value, key, expected",
    [
        (("model_type",), "SFDModle", "model_type", "'SFDModle' is not a registered model; closest: SFDModel"),
        (("network_g", "type"), "RRDBNett", "network_g.type", "not a registered architecture; closest: RRDBNet"),
        (("network_d", "type"), "sfddiscriminator", "network_d.type", "architecture; closest: SFDDiscriminator"),
        (("datasets", "train", "type"), "RealESRGANDatset", "datasets.train.type", "closest: RealESRGANDataset"),
        (("train", "pixel_opt", "type"), "L1loss", "train.pixel_opt.type", "not a registered loss; closest: L1Loss"),
        (("val", "metrics", "psnr", "type"), "psnr", "val.metrics.psnr.type", "metric; closest: calculate_psnr"),
        (("train", "optim_g", "type"), "AdamW", "train.optim_g.type", "not an optimizer SFDRealModel supports (Adam)"),
        (("train", "scheduler", "type"), "StepLR", "train.scheduler.type", "not a scheduler SFDRealModel supports"),
        (("datasets", "train", "io_backend", "type"), "Disk", "datasets.train.io_backend.type", "did you mean disk?"),
        (("network_g", "num_feet"), 64, "network_g.num_feet", "no option 'num_feet'; did you mean num_feat?"),
        (
            ("train", "scheduler", "gama"),
            0.5,
            "train.scheduler.gama",
            "MultiStepLR has no option 'gama'; did you mean gamma?",
        ),
        (("network_d", "feat_layer"), [1, 2], "network_d.feat_layer", "did you mean feat_layers"),
        (("datasets", "test"), {"type": "PairedImageDataset"}, "datasets.test", "named train or val, val_1"),
    ],
)
def test_unknown_names_get_the_closest_registered_ones(path, value, key, expected):
    opt = recipe()
    node = opt
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    message = refused(opt)
    assert message.startswith(key + ": ") and expected in message, message


def test_what_each_model_needs():
    sfd = recipe("train_SFD_RRDB_x4.yml")
    bad = copy.deepcopy(sfd)
    bad["network_d"] = {"type": "UNetDiscriminatorSN", "num_in_ch": 3}
    assert refused(bad).startswith("network_d.type: 'UNetDiscriminatorSN': SFDModel needs SFDDiscriminator")
    bad = copy.deepcopy(sfd)
    bad["train"]["gan_opt"] = {"type": "GANLoss", "gan_type": "vanilla"}
    assert refused(bad).startswith("train.gan_opt: SFDModel takes train.feat_gan_opt / train.text_gan_opt instead")
    off = copy.deepcopy(sfd)
    off["network_d"]["use_text"] = False
    del off["train"]["text_gan_opt"]
    assert check_recipe(off, "r.yml") == []  # TG-D off: no text_gan_opt needed
    bicubic = copy.deepcopy(sfd)
    bicubic["network_g"] = {"type": "SFDBicubicUpsampler", "scale": 4}
    del bicubic["train"]["optim_g"]
    assert check_recipe(bicubic, "r.yml") == []  # a parameter-free generator needs no optimizer

    csud = recipe("demo_CSUD_cpu.yml")
    for key, expected in (("network_t", "network_t: missing (CSUDModel's rain generator)"),):
        bad = copy.deepcopy(csud)
        del bad[key]
        assert refused(bad).startswith(expected)
    bad = copy.deepcopy(csud)
    del bad["train"]["optim_t"]
    assert refused(bad).startswith("train.optim_t: missing (required by CSUDModel)")


def test_stock_hosts_with_our_discriminator():
    host = recipe("train_SFD_RRDB_x4.yml")
    host["model_type"] = "ESRGANModel"
    assert refused(copy.deepcopy(host)).startswith("train.gan_opt: missing (ESRGANModel computes its adversarial loss")
    host["train"]["gan_opt"] = {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 5e-3}
    warnings = check_recipe(host, "r.yml")
    assert any("train.feat_gan_opt: ignored by ESRGANModel" in w for w in warnings)
    real = recipe()
    real["model_type"] = "RealESRGANModel"
    real["num_gpu"] = 0
    real["train"]["gan_opt"] = {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 0.1}
    assert refused(real).startswith("model_type: RealESRGANModel needs CUDA")


def test_annotation_kinds():
    assert kinds_of_annotation("int | None") == {"integer", "null"}
    assert kinds_of_annotation("list[int] | None") == {"list", "null"}
    assert kinds_of_annotation("Optional[float]") == {"integer", "number", "null"}
    assert kinds_of_annotation(Union[int, str]) == {"integer", "string"}  # noqa: UP007 (typing objects too)
    assert kinds_of_annotation(Optional[bool]) == {"boolean", "null"}  # noqa: UP045
    assert kinds_of_annotation("torch.Tensor") is None and kinds_of_annotation("float | Tensor") is None

    class Base:
        def __init__(self, a: int, b: str = "x"):
            pass

    class Child(Base):
        def __init__(self, c: float = 1.0, **kwargs):
            super().__init__(**kwargs)

    params, open_kwargs = signature_params(Child)
    assert sorted(params) == ["a", "b", "c"] and not open_kwargs  # **kwargs followed into the base
