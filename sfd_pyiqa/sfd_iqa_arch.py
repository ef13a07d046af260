"""SFD-IQA as a pyiqa network: ``pyiqa.create_metric('sfd_iqa', pretrained_model_path='net_d_<iter>.pth')``.

pyiqa builds a metric's network from its ``metric_opts`` plus the keyword arguments of ``create_metric``
and calls it as ``net(x)`` with ``x`` a (B, 3, H, W) RGB batch in [0, 1] (an image file is read by pyiqa
with PIL first). This module only wraps :class:`sfd_metric.sfd_iqa.SFDIQA`, so an image scores here what
``scripts/sfd_iqa_eval.py`` gives it: Q = alpha * q_feat + (1 - alpha) * q_text in [0, 1], higher is
better, on tiles of the training crop size recorded in the checkpoint. It imports nothing of pyiqa.
"""

from __future__ import annotations

import torch
from torch import nn

from sfd_metric.sfd_iqa import COMPONENTS, SFDIQA


class SFDIQAArch(nn.Module):
    """An SFD discriminator checkpoint as a no-reference pyiqa metric network.

    Args:
        pretrained_model_path (str): the SFD discriminator file (``net_d_<iter>.pth`` of SFDModel, or
            traiNNer-redux's ``net_d_<iter>.safetensors``); required.
        clip_pretrained (str | None): override of the CLIP weights recorded in the checkpoint (a local
            file of the same CLIP). Default: None (the recorded ones).
        component (str): 'q' (Q), 'q_feat' or 'q_text'. Default: 'q'.
        tile (int | None): crop size; None = the recorded training patch size, else 256.
        stride, alpha, batch_size, bf16: see :class:`sfd_metric.sfd_iqa.SFDIQA`.
    """

    def __init__(
        self,
        pretrained_model_path: str | None = None,
        clip_pretrained: str | None = None,
        component: str = "q",
        tile: int | None = None,
        stride: int | None = None,
        alpha: float = 0.5,
        batch_size: int = 16,
        bf16: bool = False,
    ) -> None:
        super().__init__()
        if not pretrained_model_path:
            raise ValueError(
                "sfd_iqa needs pretrained_model_path=<SFD discriminator file> (net_d_<iter>.pth of an SFD run)"
            )
        if component not in COMPONENTS:
            raise ValueError(f"sfd_iqa: component must be one of {COMPONENTS}, got {component!r}")
        # built on the CPU; pyiqa then moves the network (.to(device)) and forward follows it
        self._scorer = SFDIQA.from_checkpoint(
            pretrained_model_path,
            clip_pretrained=clip_pretrained,
            device="cpu",
            tile=tile,
            stride=stride,
            alpha=alpha,
            batch_size=batch_size,
            bf16=bf16,
        )
        self.disc = self._scorer.disc
        self.component = component

    def scorer(self, device: torch.device) -> SFDIQA:
        """The scorer on ``device`` (rebuilt after the network moved: one text-tower pass)."""
        s = self._scorer
        if s.device != device:
            self._scorer = SFDIQA(self.disc, s.tile, s.stride, s.alpha, s.batch_size, device, s.bf16)
        return self._scorer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB or (B, 1, H, W) gray in [0, 1] -> (B, 1) scores in [0, 1], higher is better."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"sfd_iqa: expected a (B, 3, H, W) or (B, 1, H, W) batch, got {tuple(x.shape)}")
        if x.requires_grad:
            raise ValueError("sfd_iqa scores without gradients: it cannot be used as a loss (as_loss=True)")
        scorer = self.scorer(x.device)
        rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        scores = [getattr(scorer.score(img), self.component) for img in rgb]
        return torch.tensor(scores, dtype=torch.float32, device=x.device)[:, None]
