"""RRDBNet generators that load the official SFD (and original ESRGAN) checkpoints directly.

The official SFD release (github.com/GuangluDong0728/SFD, ``rrdbnet_arch.py``) ships RRDBNet weights
in the old ESRGAN naming: ``conv_first``, ``RRDB_trunk.<i>.RDB<k>.conv<m>``, ``trunk_conv``,
``upconv1``, ``upconv2`` (×4 only), ``HRconv``, ``conv_last``.

- ``SFDRRDBNet`` is BasicSR's ``RRDBNet`` (same parameters, same BasicSR names, same saved files)
  that also accepts old-name ×4 checkpoints and ``{"params"|"params_ema": ...}`` wrappers in
  ``load_state_dict``. Use it as ``network_g: type: SFDRRDBNet`` to start from an official ×4 file.
- ``SFDRRDBNetOfficialX2`` is the official ×2 layout: no pixel-unshuffle, one nearest ×2 upsampling
  followed by ``upconv1``. Its parameters keep the old names, so official ×2 files load as they are.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import make_layer
from basicsr.archs.rrdbnet_arch import ResidualDenseBlock, RRDBNet
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from sfd_utils.checkpoint import (
    LAYOUT_BASICSR,
    LAYOUT_OLD_X2,
    LAYOUT_OLD_X4,
    CheckpointError,
    detect_rrdb_layout,
    extract_state_dict,
    is_state_dict,
    old_esrgan_to_basicsr,
)


def _with_prefix(state_dict: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def _replace_prefixed(state_dict: dict, prefix: str, new: Mapping) -> None:
    """Replace every ``prefix``-key of ``state_dict`` by ``new`` (keys relative to ``prefix``), in place."""
    for k in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[k]
    state_dict.update({prefix + k: v for k, v in new.items()})


def _unwrap(state_dict):
    # `param_key_g: ~` hands BasicSR's whole file ({'params': ..., 'params_ema': ...}) to the network
    return state_dict if is_state_dict(state_dict) else extract_state_dict(state_dict)[0]


@ARCH_REGISTRY.register()
class SFDRRDBNet(RRDBNet):
    """BasicSR's RRDBNet (ESRGAN generator) that also loads old-ESRGAN-named (official SFD ×4) weights.

    (B, num_in_ch, h, w) in [0, 1] -> (B, num_out_ch, h*scale, w*scale), identical to ``RRDBNet``.

    Args:
        num_in_ch (int): input channels. Default: 3.
        num_out_ch (int): output channels. Default: 3.
        scale (int): 4, 2 or 1 (2 and 1 use BasicSR's pixel-unshuffle). Default: 4.
        num_feat (int): feature channels. Default: 64.
        num_block (int): RRDB blocks. Default: 23.
        num_grow_ch (int): dense-block growth channels. Default: 32.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32) -> None:
        super().__init__(num_in_ch, num_out_ch, scale, num_feat, num_block, num_grow_ch)
        self.register_load_state_dict_pre_hook(_rename_old_keys)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return super().load_state_dict(_unwrap(state_dict), strict=strict, assign=assign)


def _rename_old_keys(module, state_dict, prefix, *args) -> None:
    """Load-state-dict pre-hook: old ESRGAN names under ``prefix`` -> BasicSR names (in place)."""
    own = _with_prefix(state_dict, prefix)
    if detect_rrdb_layout(own) in (LAYOUT_OLD_X4, LAYOUT_OLD_X2):
        _replace_prefixed(state_dict, prefix, old_esrgan_to_basicsr(own))  # raises for the x2 layout


class OldRRDB(nn.Module):
    """Residual-in-residual dense block with the old ESRGAN attribute names ``RDB1..RDB3``.

    (B, num_feat, h, w) -> same shape; the maths of BasicSR's ``RRDB``.
    """

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.RDB1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.RDB2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.RDB3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x  # residual scaling 0.2, as in ESRGAN


@ARCH_REGISTRY.register()
class SFDRRDBNetOfficialX2(nn.Module):
    """The official SFD ×2 RRDBNet: ESRGAN trunk, one nearest-×2 upsampling + ``upconv1``.

    (B, num_in_ch, h, w) in [0, 1] -> (B, num_out_ch, 2h, 2w). Any h, w (no pixel-unshuffle).
    Parameter names are the official ones, so the release's ×2 file loads with BasicSR's own
    ``load_network`` (``param_key_g: ~`` for a raw state dict) and saved files keep that layout.

    Args:
        num_in_ch (int): input channels. Default: 3.
        num_out_ch (int): output channels. Default: 3.
        num_feat (int): feature channels (official ``nf``). Default: 64.
        num_block (int): RRDB blocks (``nb``). Default: 23.
        num_grow_ch (int): growth channels (``gc``). Default: 32.
        scale (int): must be 2; accepted so a recipe's RRDBNet block only needs its ``type`` changed.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=2) -> None:
        super().__init__()
        if scale != 2:
            raise ValueError(f"SFDRRDBNetOfficialX2 is a x2 network, got scale={scale} (use SFDRRDBNet for x4)")
        self.scale = 2
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.RRDB_trunk = make_layer(OldRRDB, num_block, num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.trunk_conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upconv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.HRconv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        self.register_load_state_dict_pre_hook(_refuse_other_layouts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.trunk_conv(self.RRDB_trunk(feat))
        feat = self.lrelu(self.upconv1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.HRconv(feat)))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return super().load_state_dict(_unwrap(state_dict), strict=strict, assign=assign)


def _refuse_other_layouts(module, state_dict, prefix, *args) -> None:
    """Pre-hook: a clear message instead of a wall of missing keys for ×4 / BasicSR files."""
    layout = detect_rrdb_layout(_with_prefix(state_dict, prefix))
    if layout == LAYOUT_OLD_X4:
        raise CheckpointError(
            "an official x4 RRDBNet checkpoint (has upconv2) cannot load into the x2 "
            "SFDRRDBNetOfficialX2; use SFDRRDBNet (scale 4)"
        )
    if layout == LAYOUT_BASICSR:
        raise CheckpointError(
            "a BasicSR RRDBNet checkpoint (body/conv_body names) cannot load into "
            "SFDRRDBNetOfficialX2; use RRDBNet or SFDRRDBNet"
        )
