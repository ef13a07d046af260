"""Zero-shot CLIP quality (CLIP-IQA style): the baseline SFD-IQA is measured against.

With fixed prompts ``"a high quality photo."`` / ``"a low quality photo."`` and CLIP's own
temperature, the quality of a crop c is the softmax probability of the first prompt:

    p(c) = exp(s * <e(c), t_high>) / (exp(s * <e(c), t_high>) + exp(s * <e(c), t_low>))

with e(c) the L2-normalised image embedding, t the L2-normalised text embeddings and s = exp(CLIP's
logit_scale). An image is tiled exactly as SFD-IQA tiles it and p is averaged over the crops. No
training: it shows what the CLIP embedding alone knows about quality, which TG-D then refines with
learnable prompts.
"""

from __future__ import annotations

import numpy as np
import torch

from sfd_arch.clip_backbone import FrozenCLIP
from sfd_metric.sfd_iqa import crop_batches

QUALITY_PROMPTS = ("a high quality photo.", "a low quality photo.")


class ZeroShotQuality:
    """Fixed-prompt zero-shot quality in [0, 1] (higher = better) from a :class:`FrozenCLIP`.

    Args:
        clip (FrozenCLIP): the CLIP to ask (e.g. an SFD discriminator's ``backbone``).
        tile (int): crop size, as SFD-IQA's. Default: 256.
        stride (int | None): tile step; None = tile. Default: None.
        prompts (tuple[str, str]): (good, bad) prompt. Default: QUALITY_PROMPTS.
        batch_size (int): crops per forward. Default: 16.
    """

    def __init__(
        self,
        clip: FrozenCLIP,
        tile: int = 256,
        stride: int | None = None,
        prompts: tuple[str, str] = QUALITY_PROMPTS,
        batch_size: int = 16,
    ) -> None:
        if len(prompts) != 2:
            raise ValueError(f"prompts must be a (good, bad) pair, got {prompts!r}")
        if tile < clip.stride:
            raise ValueError(f"tile={tile} is smaller than the CLIP stride {clip.stride}")
        self.clip, self.tile, self.stride, self.batch_size = clip, tile, stride, batch_size
        self.prompts = tuple(prompts)
        with torch.inference_mode():
            self.text_features = clip.encode_text(list(prompts)).float()  # (2, D)

    @torch.inference_mode()
    def score_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) in [0, 1] -> (B,) p(good prompt) float32 on CPU."""
        emb = self.clip(crops.to(self.clip.mean.device)).embedding.float()
        logits = self.clip.logit_scale * emb @ self.text_features.T
        return logits.softmax(dim=-1)[:, 0].cpu()

    def score(self, img) -> float:
        """One image (numpy (H, W[, C]) or tensor (3, H, W) in [0, 1]) -> mean p over its SFD-IQA tiles."""
        ps = [self.score_crops(c) for c in crop_batches(img, self.tile, self.stride, self.batch_size)]
        return float(torch.cat(ps).mean())


def auc(pos, neg) -> float:
    """ROC-AUC of scores (``pos`` should score higher than ``neg``), ties counted half."""
    pos, neg = np.asarray(pos, dtype=np.float64)[:, None], np.asarray(neg, dtype=np.float64)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())
