"""SFDRealModel: real-world SFD training with Real-ESRGAN's on-the-fly second-order degradations.

basicsr's ``RealESRGANModel`` builds its JPEG simulator and USM sharpener with ``.cuda()`` and
keeps its training-pair pool on CUDA, so it cannot run on a CPU machine. This model reuses
basicsr's degradation synthesis (``RealESRGANModel.feed_data``) unchanged, but builds those parts
on ``self.device``; the GAN step is SFDModel's.
"""

from __future__ import annotations

import torch
from basicsr.models.realesrgan_model import RealESRGANModel
from basicsr.utils import DiffJPEG, USMSharp, get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from sfd_model.sfd_model import SFDModel


class _Contiguous(torch.nn.Module):
    """Wraps a module so its output is contiguous (see feed_data)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *args, **kwargs):
        return self.inner(*args, **kwargs).contiguous()


def _compact(x: torch.Tensor) -> torch.Tensor:
    """x as uint8 (x * 255) when that round-trips exactly through :func:`_expand`, else x, on CPU."""
    x = x.detach().cpu()
    q = (x * 255.0).round().clamp(0, 255).to(torch.uint8)
    return q if torch.equal(_expand(q), x) else x.clone()


def _expand(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x


@MODEL_REGISTRY.register()
class SFDRealModel(SFDModel):
    """Options as basicsr's RealESRGANModel (degradation keys, ``queue_size``, ``l1_gt_usm``,
    ``percep_gt_usm``, ``gan_gt_usm``) plus SFDModel's. Data: ``RealESRGANDataset``."""

    def __init__(self, opt):
        super().__init__(opt)
        self.jpeger = _Contiguous(DiffJPEG(differentiable=False)).to(self.device)
        self.usm_sharpener = USMSharp().to(self.device)
        self.queue_size = opt.get("queue_size", 180)

    def feed_data(self, data):
        # basicsr's synthesis as it is (it needs only jpeger, usm_sharpener and the pool below).
        # Its filter2D calls .view(), which fails on non-contiguous tensors (the dataset's CHW
        # views, DiffJPEG's output on CPU); on GPU `.to(device)` happened to copy them.
        self.note_data_position(data)
        data = {k: v.contiguous() if torch.is_tensor(v) else v for k, v in data.items()}
        RealESRGANModel.feed_data(self, data)

    @torch.no_grad()
    def _dequeue_and_enqueue(self):
        """Training-pair pool (as Real-ESRGAN) on the model's device: diversifies degradations."""
        b = self.lq.shape[0]
        if not hasattr(self, "queue_lr"):
            if self.queue_size % b:
                raise ValueError(f"queue_size {self.queue_size} must be divisible by the batch size {b}")
            self.queue_lr = self.lq.new_zeros((self.queue_size, *self.lq.shape[1:]))
            self.queue_gt = self.gt.new_zeros((self.queue_size, *self.gt.shape[1:]))
            self.queue_ptr = 0
        if self.queue_ptr == self.queue_size:
            idx = torch.randperm(self.queue_size)
            self.queue_lr, self.queue_gt = self.queue_lr[idx], self.queue_gt[idx]
            lq_out, gt_out = self.queue_lr[:b].clone(), self.queue_gt[:b].clone()
            self.queue_lr[:b], self.queue_gt[:b] = self.lq.clone(), self.gt.clone()
            self.lq, self.gt = lq_out, gt_out
        else:
            self.queue_lr[self.queue_ptr : self.queue_ptr + b] = self.lq.clone()
            self.queue_gt[self.queue_ptr : self.queue_ptr + b] = self.gt.clone()
            self.queue_ptr += b

    def _extra_training_state(self) -> dict:
        """The training-pair pool too: a resumed run must draw its pairs from the same pool. Its
        images are multiples of 1/255 (the dataset's 8-bit images and Real-ESRGAN's rounded LQ), so
        they are stored as uint8 when that is exact (4x smaller), else as they are."""
        extra = super()._extra_training_state()
        if hasattr(self, "queue_lr"):
            extra["pair_pool"] = {
                "lq": _compact(self.queue_lr),
                "gt": _compact(self.queue_gt),
                "ptr": self.queue_ptr,
            }
        return extra

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        pool = resume_state.get("pair_pool")
        if pool is not None and pool["lq"].shape[0] != self.queue_size:
            get_root_logger().warning(
                f"queue_size changed ({pool['lq'].shape[0]} in the training state, {self.queue_size} now): "
                "the training-pair pool starts empty"
            )
        elif pool is not None:
            self.queue_lr = _expand(pool["lq"]).to(self.device)
            self.queue_gt = _expand(pool["gt"]).to(self.device)
            self.queue_ptr = int(pool["ptr"])

    def targets(self):
        usm = getattr(self, "gt_usm", self.gt)
        pick = [
            usm if self.opt.get(key, default) else self.gt
            for key, default in (("l1_gt_usm", True), ("percep_gt_usm", True), ("gan_gt_usm", False))
        ]
        return tuple(pick)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        self.is_train = False  # validation images are fed as they are, without synthesis
        try:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            self.is_train = True
