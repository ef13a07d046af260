"""NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022): the CSUD derainer.

Our own implementation. Parameter names follow the public NAFNet code (megvii-research/NAFNet), so
its checkpoints and the CSUD authors' derainer checkpoints load with ``strict=True``:
``intro``, ``encoders.i.j.*``, ``downs.i``, ``middle_blks.j.*``, ``ups.i.0``, ``decoders.i.j.*``,
``ending``; per block ``conv1``..``conv5``, ``sca.1``, ``norm1``, ``norm2``, ``beta``, ``gamma``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn


class LayerNorm2d(nn.Module):
    """Layer norm over the channel axis of a (B, C, H, W) map, per pixel; params ``weight``, ``bias``."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + self.eps)
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    """NAFNet's SimpleGate: split channels in two halves and multiply them, (B, 2C, H, W) -> (B, C, H, W)."""
    a, b = x.chunk(2, dim=1)
    return a * b


class NAFBlock(nn.Module):
    """Nonlinear-activation-free block: LN, 1x1, depthwise 3x3, gate, simplified channel attention,
    1x1 (scaled by ``beta``), then LN, 1x1, gate, 1x1 (scaled by ``gamma``). Shape-preserving."""

    def __init__(self, channels: int, dw_expand: int = 2, ffn_expand: int = 2, drop_out_rate: float = 0.0) -> None:
        super().__init__()
        dw = channels * dw_expand
        ffn = channels * ffn_expand
        self.conv1 = nn.Conv2d(channels, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, channels, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv4 = nn.Conv2d(channels, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, channels, 1)
        self.norm1 = LayerNorm2d(channels)
        self.norm2 = LayerNorm2d(channels)
        self.dropout1 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.dropout2 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        # Zero-initialised scales: every block starts as the identity.
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = simple_gate(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + self.dropout1(x) * self.beta
        x = self.conv5(simple_gate(self.conv4(self.norm2(y))))
        return y + self.dropout2(x) * self.gamma


@ARCH_REGISTRY.register()
class CSUDNAFNet(nn.Module):
    """NAFNet U-Net with a global residual; the YAML keys are those of the public NAFNet recipes.

    Args:
        img_channel (int): input/output channels. Default: 3.
        width (int): channels at full resolution, doubled at each of the ``len(enc_blk_nums)``
            downsamplings. Default: 32 (CSUD).
        middle_blk_num (int): blocks at the lowest resolution. Default: 12 (CSUD).
        enc_blk_nums (list[int]): blocks per encoder level. Default: [2, 2, 4, 8] (CSUD).
        dec_blk_nums (list[int]): blocks per decoder level, same length. Default: [2, 2, 2, 2] (CSUD).
        dw_expand, ffn_expand (int): channel expansion inside a block. Default: 2, 2.
        drop_out_rate (float): dropout inside blocks. Default: 0.

    ``forward(x)``: (B, C, H, W) in [0, 1], any H and W (zero-padded to a multiple of
    ``2 ** len(enc_blk_nums)`` inside, then cropped back) -> (B, C, H, W), not clamped.
    """

    def __init__(
        self,
        img_channel: int = 3,
        width: int = 32,
        middle_blk_num: int = 12,
        enc_blk_nums: Sequence[int] = (2, 2, 4, 8),
        dec_blk_nums: Sequence[int] = (2, 2, 2, 2),
        dw_expand: int = 2,
        ffn_expand: int = 2,
        drop_out_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError(
                f"network_g: enc_blk_nums {list(enc_blk_nums)} and dec_blk_nums {list(dec_blk_nums)} "
                "must have the same length (one decoder level per encoder level)"
            )

        def blocks(ch: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[NAFBlock(ch, dw_expand, ffn_expand, drop_out_rate) for _ in range(n)])

        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        self.decoders, self.ups = nn.ModuleList(), nn.ModuleList()
        ch = width
        for n in enc_blk_nums:
            self.encoders.append(blocks(ch, n))
            self.downs.append(nn.Conv2d(ch, 2 * ch, 2, stride=2))
            ch *= 2
        self.middle_blks = blocks(ch, middle_blk_num)
        for n in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(ch, 2 * ch, 1, bias=False), nn.PixelShuffle(2)))
            ch //= 2
            self.decoders.append(blocks(ch, n))
        self.multiple = 2 ** len(enc_blk_nums)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        # Zero padding as in the public code, so official checkpoints give their published numbers.
        x_in = F.pad(inp, (0, (-w) % self.multiple, 0, (-h) % self.multiple))
        x = self.intro(x_in)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        x = self.ending(x) + x_in
        return x[..., :h, :w]


def nafnet_options_from_state_dict(state_dict: dict) -> dict:
    """CSUDNAFNet kwargs that fit a checkpoint in the public key layout (width and block counts).

    ``state_dict``: NAFNet parameters (a ``module.`` prefix is ignored). Raises KeyError when the
    keys are not NAFNet's.
    """
    keys = [k[7:] if k.startswith("module.") else k for k in state_dict]
    sd = {k: v for k, v in zip(keys, state_dict.values())}
    if "intro.weight" not in sd or "ending.weight" not in sd:
        raise KeyError("not a NAFNet state dict: no intro.weight / ending.weight")

    def indices(pattern: str) -> set[int]:
        return {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}

    def counts(prefix: str, levels: int) -> list[int]:
        return [len(indices(rf"{prefix}\.{i}\.(\d+)\.")) for i in range(levels)]

    n_levels = len(indices(r"downs\.(\d+)\."))
    width, img_channel = sd["intro.weight"].shape[:2]
    block = next((k[: -len("conv1.weight")] for k in keys if k.endswith("conv1.weight")), None)
    dw_expand = ffn_expand = 2  # no block at all: the expansions do not matter
    if block is not None:
        ch = sd[block + "conv1.weight"].shape[1]
        dw_expand, ffn_expand = sd[block + "conv1.weight"].shape[0] // ch, sd[block + "conv4.weight"].shape[0] // ch
    return {
        "img_channel": int(img_channel),
        "width": int(width),
        "middle_blk_num": len(indices(r"middle_blks\.(\d+)\.")),
        "enc_blk_nums": counts("encoders", n_levels),
        "dec_blk_nums": counts("decoders", len(indices(r"ups\.(\d+)\."))),
        "dw_expand": int(dw_expand),
        "ffn_expand": int(ffn_expand),
    }
