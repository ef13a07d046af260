"""``network_d`` options: the documented table is the constructor, bad options are one line naming
``network_d.<key>`` before anything is built, and the training-patch size is recorded by any host."""

from __future__ import annotations

import inspect
import os
import pathlib
import re
import sys

import pytest
import torch
import yaml
from conftest import ROOT, photo_tensor

from sfd_arch.clip_backbone import CLIPWeightsNotFound
from sfd_arch.cuda_graphs import check_fast_path
from sfd_arch.discriminator_options import CHECKS, NetworkOptionError, raise_option_error
from sfd_arch.sfd_discriminator_arch import SFDDiscriminator, decode_config, option_names

OPTIONS_DOC = os.path.join(ROOT, "docs", "options.md")


def documented_options(section: str = "# `network_d` options") -> dict[str, str]:
    """option -> default cell of the table under the heading starting with ``section`` in docs/options.md."""
    rows, inside = {}, False
    for line in open(OPTIONS_DOC, encoding="utf-8"):
        if line.startswith("#"):
            inside = line.startswith(section)
        m = re.match(r"\| `(\w+)` \| `([^`]*)` \|", line)
        if m and inside:
            rows[m.group(1)] = m.group(2)
    return rows


def test_options_table_lists_exactly_the_constructor_parameters_with_their_defaults():
    params = {p.name: p for p in inspect.signature(SFDDiscriminator).parameters.values() if p.name in option_names()}
    rows = documented_options()
    assert list(rows) == list(option_names())  # same names, constructor order
    for name, cell in rows.items():
        value = yaml.safe_load(cell)
        if name == "fast_path":  # YAML 1.1 reads an unquoted `off` as false, which means 'off'
            value = check_fast_path(value)
        assert value == params[name].default, (name, cell)
    assert set(CHECKS) == set(option_names())  # every option has a value check
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    trainner = open(os.path.join(ROOT, "docs", "trainner-redux.md"), encoding="utf-8").read()
    assert "docs/options.md" in readme and "options.md" in trainner


def test_sfd_gan_loss_table_is_its_constructor():
    from sfd_loss.sfd_loss import SFDGANLoss

    params = list(inspect.signature(SFDGANLoss).parameters.values())
    rows = documented_options("## `train.feat_gan_opt` / `train.text_gan_opt`")
    assert list(rows) == [p.name for p in params]
    assert {k: yaml.safe_load(v) for k, v in rows.items()} == {p.name: p.default for p in params}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"clip_modle": "RN50"}, r"^network_d\.clip_modle \(did you mean clip_model.*\): unknown option"),
        ({"feat_layer": [1]}, r"^network_d\.feat_layer \(did you mean feat_layers"),
        ({"n_ctxx": 4, "bogus": 1}, r"^network_d\.bogus, network_d\.n_ctxx \(did you mean n_ctx\?\): unknown options"),
        ({"use_text": "false"}, r"^network_d\.use_text: must be true or false, got 'false'$"),
        ({"feat_norm": "RMS"}, r"^network_d\.feat_norm: must be rms \| channel \| none, got 'RMS'$"),
        ({"feat_head_depth": -1}, r"^network_d\.feat_head_depth: must be an integer >= 0, got -1$"),
        ({"feat_head_kernel": 4}, r"^network_d\.feat_head_kernel: must be an odd positive integer"),
        ({"feat_head_kernel": True}, r"^network_d\.feat_head_kernel: must be an odd positive integer"),
        ({"n_ctx": 0}, r"^network_d\.n_ctx: must be a positive integer, got 0$"),
        ({"feat_layers": 2}, r"^network_d\.feat_layers: must be null or a list"),
        ({"clip_dtype": "half"}, r"^network_d\.clip_dtype: must be auto \| fp32 \| bf16 \| fp16"),
        ({"use_feat": False, "use_text": False}, r"^network_d: at least one of use_feat / use_text"),
    ],
)
def test_bad_option_is_one_line_naming_the_key_before_clip_is_built(options, message, monkeypatch):
    import sfd_arch.sfd_discriminator_arch as arch

    monkeypatch.setattr(arch, "FrozenCLIP", None)  # would raise TypeError if the build were reached
    with pytest.raises(NetworkOptionError, match=message) as info:
        SFDDiscriminator(**options)
    assert "\n" not in str(info.value)
    with pytest.raises(NetworkOptionError, match=message):  # BasicSR's start-up check says the same
        SFDDiscriminator.check_options({"type": "SFDDiscriminator", **options})


def test_clip_errors_name_the_network_d_key(tiny_clip_files, tmp_path):
    with pytest.raises(ValueError, match=r"^network_d\.clip_model: unknown open_clip model 'tiny-rm'.*tiny-rn") as info:
        SFDDiscriminator("tiny-rm", tiny_clip_files["tiny-rn"])
    assert "network_d.clip_config" in str(info.value)  # how to use a model of one's own
    with pytest.raises(CLIPWeightsNotFound, match=r"^network_d\.clip_pretrained: "):
        SFDDiscriminator("tiny-rn", str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match=r"^network_d\.feat_layers: \[7\] invalid for tiny-rn"):
        SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], feat_layers=[7])
    with pytest.raises(ValueError, match=r"^network_d\.clip_input_size: "):
        SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], clip_input_size=8)
    with pytest.raises(FileNotFoundError, match=r"^network_d\.clip_config: "):
        SFDDiscriminator.check_options({"clip_model": "x", "clip_config": str(tmp_path / "none.json")})
    path = pathlib.Path(tiny_clip_files["tiny-rn"])  # a path object is as good as its string
    assert SFDDiscriminator("tiny-rn", path, n_ctx=2, feat_mid_channels=4).config["clip_pretrained"] == str(path)


def test_option_error_hides_the_frames_above_it_from_rich():
    """traiNNer-redux prints uncaught errors with rich's traceback: the guard frame leaves the message alone."""
    import rich.traceback as rich_traceback  # the test extra installs rich (traiNNer-redux brings it too)
    from rich.console import Console

    def host_building_the_network(depth):  # a few frames standing for traiNNer's train.py -> build_network
        if depth:
            return host_building_the_network(depth - 1)
        raise_option_error(NetworkOptionError("network_d.clip_model: unknown open_clip model 'RN5O'"))

    try:
        host_building_the_network(5)
    except NetworkOptionError:
        exc_info = sys.exc_info()
    console = Console(width=100, record=True, file=open(os.devnull, "w"))
    console.print(rich_traceback.Traceback.from_exception(*exc_info))
    text = console.export_text().strip().splitlines()
    assert text == ["NetworkOptionError: network_d.clip_model: unknown open_clip model 'RN5O'"], text


def test_training_forward_records_the_patch_size_in_the_checkpoint(tiny_clip_files):
    disc = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=8)
    assert "train_patch_size" not in disc.config
    disc.eval()
    with torch.no_grad():
        disc(photo_tensor("astronaut", 96))
    assert "train_patch_size" not in disc.config  # scoring/validation does not count
    disc.train()
    disc(photo_tensor("astronaut", 64, batch=2)[..., :48, :])  # (2, 3, 48, 64): a host's training batch
    assert decode_config(disc.state_dict()["_extra_state"])["train_patch_size"] == 48
    fresh = SFDDiscriminator("tiny-rn", tiny_clip_files["tiny-rn"], n_ctx=4, feat_mid_channels=8)
    fresh.load_state_dict(disc.state_dict())
    assert fresh.config["train_patch_size"] == 48  # travels with the file (SFD-IQA's default tile)
