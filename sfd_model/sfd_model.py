"""SFDModel: GAN training of any BasicSR generator against the SFD discriminator (Feat-D + TG-D).

Cost rules (docs/method.md): per iteration CLIP runs exactly twice, once on HR without grad (reused by
the G and D steps) and once on SR with grad (its detached features reused by the D step). The
D step judges real and fake in one batched pass through ``net_d`` (so DDP syncs the heads); the
prompt features it computes (with grad to the contexts) are cached for the next G step, and saved in
the training state so a resumed run continues exactly.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict

import torch
import torch.nn.functional as F
from basicsr.losses import build_loss
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from sfd_arch.clip_backbone import cat_features, detach_features
from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
from sfd_model.model_utils import ResumableMixin
from sfd_model.step_guard import DeferredLog, StepGuardMixin, steps_on_device
from sfd_utils.checkpoint import basicsr_load_network
from sfd_utils.options_check import check_options

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _accuracy(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Fraction of positions judged right (real > 0, fake < 0), averaged over layers."""
    accs = [((r > 0).float().mean() + (f < 0).float().mean()) / 2 for r, f in zip(real, fake)]
    return torch.stack(accs).mean()


def train_patch_size(opt: dict) -> int | None:
    """The HR crop the discriminator sees in training: top-level ``gt_size`` (Real-ESRGAN-style
    recipes crop after synthesis) or ``datasets.train.gt_size``; None if neither is set."""
    size = opt.get("gt_size") or ((opt.get("datasets") or {}).get("train") or {}).get("gt_size")
    return int(size) if size else None


@MODEL_REGISTRY.register()
class SFDModel(StepGuardMixin, ResumableMixin, SRGANModel):
    """SRGANModel with the SFD discriminator and the cost rules of docs/method.md.

    YAML (under ``train``): ``feat_gan_opt`` / ``text_gan_opt`` (type SFDGANLoss; required when
    ``network_d.use_feat`` / ``use_text``), ``pixel_opt``, ``perceptual_opt`` (SFDPerceptualLoss
    loads local VGG weights only), ``net_d_iters``, ``net_d_init_iters``, ``ema_decay``,
    ``amp`` (null | bf16 | fp16), ``channels_last`` (bool), ``nonfinite_max_skips`` (int, default 5:
    a step whose loss is NaN/inf is skipped and logged; after this many iterations in a row the
    state is saved and training stops; 0 = never stop), ``optim_g`` / ``optim_d`` (Adam; ``fused:
    true`` unless set otherwise, where torch has the kernels).

    No value is read back to the host outside the iterations BasicSR logs (``logger.print_freq``):
    the non-finite guard decides on the device and is logged one iteration or more later (see
    step_guard.py); logging statistics are computed at logged iterations only.
    """

    def __init__(self, opt):
        check_options(opt, datasets=False)  # generator checkpoint, CLIP and VGG files, by YAML key
        super().__init__(opt)

    def load_network(self, net, load_path, strict=True, param_key="params"):
        """Generators: also official SFD / old-ESRGAN files and raw state dicts (BasicSR would raise
        KeyError on `params`/`params_ema`); other networks: BasicSR's loader."""
        if net is getattr(self, "net_g", None) or net is getattr(self, "net_g_ema", None):
            return basicsr_load_network(self, net, load_path, strict, param_key)
        return super().load_network(net, load_path, strict, param_key)

    def init_training_settings(self):
        train_opt = self.opt["train"]
        amp = train_opt.get("amp")
        if amp not in (None, False, *AMP_DTYPES):
            raise ValueError(f"train.amp must be null, 'bf16' or 'fp16', got {amp!r}")
        self.amp_dtype = AMP_DTYPES.get(amp) if amp else None
        self.channels_last = bool(train_opt.get("channels_last", False))
        self._nonfinite_limit()  # a bad train.nonfinite_max_skips stops here, not at the first NaN
        if train_opt.get("gan_opt"):
            raise ValueError("SFDModel: use train.feat_gan_opt / train.text_gan_opt instead of train.gan_opt")
        super().init_training_settings()
        disc = self.get_bare_model(self.net_d)
        if not isinstance(disc, SFDDiscriminator):
            raise ValueError(
                f"SFDModel needs network_d.type SFDDiscriminator, got {type(disc).__name__}; "
                "use SRGANModel/ESRGANModel for other discriminators"
            )
        clip_dtype = disc.apply_clip_dtype(self.amp_dtype, self.device.type)  # network_d.clip_dtype
        patch = train_patch_size(self.opt)
        if patch:  # saved in every net_d checkpoint: SFD-IQA scores on tiles of this size by default
            disc.config["train_patch_size"] = patch
        self.cri_feat = self._build_gan_loss("feat_gan_opt", disc.use_feat)
        self.cri_text = self._build_gan_loss("text_gan_opt", disc.use_text)
        # fp16: one GradScaler per optimizer (as maintained trainers do), so an overflow in one
        # network's backward (e.g. the prompt contexts' gradient through CLIP's text tower) lowers
        # only that network's loss scale and skips only its step.
        self.grad_scalers = {}
        if self.amp_dtype is torch.float16:
            self.grad_scalers = {net: torch.amp.GradScaler(self.device.type) for net in ("g", "d")}
        if self.channels_last:
            self.net_g.to(memory_format=torch.channels_last)
            self.net_d.to(memory_format=torch.channels_last)
        get_root_logger().info(
            f"SFDModel: {disc.clip_description}; "
            f"Feat-D layers {disc.backbone.feat_layers if disc.use_feat else 'off'}, "
            f"TG-D {'on' if disc.use_text else 'off'}, amp {amp or 'off'}, channels_last {self.channels_last}, "
            f"frozen CLIP weights {str(clip_dtype).replace('torch.', '')}, fast path {disc.fast_path.mode}"
            + (f", CLIP input {disc.backbone.input_size}" if disc.backbone.input_size else "")
        )

    def setup_optimizers(self):
        """As SRGANModel; a generator without trainable parameters (SFDBicubicUpsampler) gets no
        optimizer, and the model then trains the discriminator alone."""
        params_g = [p for p in self.net_g.parameters() if p.requires_grad]
        self.optimizer_g = None
        if params_g:
            opt_g = self.optimizer_options("optim_g")
            self.optimizer_g = self.get_optimizer(opt_g.pop("type"), params_g, **opt_g)
            self.optimizers.append(self.optimizer_g)
        else:
            get_root_logger().info("SFDModel: network_g has no trainable parameters: discriminator-only training")
        opt_d = self.optimizer_options("optim_d")
        self.optimizer_d = self.get_optimizer(opt_d.pop("type"), self.net_d.parameters(), **opt_d)
        self.optimizers.append(self.optimizer_d)
        self._fused = [bool(all(g.get("fused") for g in o.param_groups)) for o in self.optimizers]

    def _build_gan_loss(self, key: str, enabled: bool):
        opt = self.opt["train"].get(key)
        if not enabled:
            return None
        if not opt:
            raise KeyError(f"train.{key} is required while network_d uses that discriminator (type: SFDGANLoss)")
        if key == "text_gan_opt" and opt.get("feature_matching"):
            raise ValueError("train.text_gan_opt.feature_matching: TG-D has one logit, no features to match")
        return build_loss(opt).to(self.device)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def feed_data(self, data):
        self.note_data_position(data)
        super().feed_data(data)
        if getattr(self, "channels_last", False):
            self.lq = self.lq.contiguous(memory_format=torch.channels_last)

    def targets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pixel target, perceptual target, real image for the discriminators)."""
        return self.gt, self.gt, self.gt

    def _backward(self, loss: torch.Tensor, net: str) -> None:
        """Backward of one network's loss ('g' or 'd'), through its GradScaler under fp16."""
        scaler = self.grad_scalers.get(net)
        (loss if scaler is None else scaler.scale(loss)).backward()

    def _host_step(self, optimizer, net: str) -> None:
        """The step of an optimizer that cannot skip on the device (the skip was decided on the host)."""
        scaler = self.grad_scalers.get(net)
        if scaler is None:
            optimizer.step()
        else:  # GradScaler skips the step when a gradient overflowed (its first steps usually do)
            scaler.step(optimizer)
            scaler.update()

    def optimize_parameters(self, current_iter):
        disc = self.get_bare_model(self.net_d)
        pix_gt, percep_gt, gan_gt = self.targets()
        logged = self.logs_at(current_iter)
        loss_dict = OrderedDict()
        for p in self.net_d.parameters():
            p.requires_grad = False

        with torch.no_grad(), self._autocast():
            feats_real = disc.extract(gan_gt)  # CLIP forward 1 of 2: HR, reused by G and D steps

        g_step = (
            self.optimizer_g is not None
            and current_iter % self.net_d_iters == 0
            and current_iter > self.net_d_init_iters
        )
        if g_step:
            self.optimizer_g.zero_grad(set_to_none=True)
            with self._autocast():
                self.output = self.net_g(self.lq)
                l_g_total = 0
                if self.cri_pix:
                    loss_dict["l_g_pix"] = self.cri_pix(self.output, pix_gt)
                    l_g_total = l_g_total + loss_dict["l_g_pix"]
                if self.cri_perceptual:
                    l_percep, l_style = self.cri_perceptual(self.output, percep_gt)
                    for name, value in (("l_g_percep", l_percep), ("l_g_style", l_style)):
                        if value is not None:
                            loss_dict[name] = value
                            l_g_total = l_g_total + value
                feats_fake = disc.extract(self.output)  # CLIP forward 2 of 2: SR, with grad to it
                # Bare module: no D gradient in this step, so DDP must not expect one.
                text_feats = self._cached_text_features(disc)
                match = bool(getattr(self.cri_feat, "feature_matching", False))  # G term on the heads' activations
                fake = disc.logits(feats_fake, text_feats, hidden=match)
                real = None
                if self._relativistic() or match:
                    with torch.no_grad():
                        real = disc.logits(feats_real, text_feats, hidden=match)
                if self.cri_feat:
                    r, f = (real.feat_hidden, fake.feat_hidden) if match else (real.feat if real else None, fake.feat)
                    loss_dict["l_g_feat"] = self.cri_feat(r, f, is_disc=False)
                    l_g_total = l_g_total + loss_dict["l_g_feat"]
                if self.cri_text:
                    loss_dict["l_g_text"] = self.cri_text(real.text if real else None, fake.text, is_disc=False)
                    l_g_total = l_g_total + loss_dict["l_g_text"]
            # The G step is applied below, after the D forward: one decision for both (a NaN step would
            # poison the weights and every later checkpoint), on the device where the optimizers can.
            self._backward(l_g_total, "g")
            feats_fake = detach_features(feats_fake)
        else:
            with torch.no_grad(), self._autocast():
                self.output = self.net_g(self.lq)
                feats_fake = disc.extract(self.output)
        g_terms = list(loss_dict)

        for p in self.net_d.parameters():
            p.requires_grad = True
        self.optimizer_d.zero_grad(set_to_none=True)
        b = gan_gt.shape[0]
        with self._autocast():
            logits = self.net_d(cat_features(feats_real, feats_fake), mode="logits")  # one pass, via DDP
            l_d_total = 0
            if self.cri_feat:
                real_f, fake_f = [m[:b] for m in logits.feat], [m[b:] for m in logits.feat]
                loss_dict["l_d_feat"] = self.cri_feat(real_f, fake_f, is_disc=True)
                l_d_total = l_d_total + loss_dict["l_d_feat"]
            if self.cri_text:
                real_t, fake_t = logits.text[:b], logits.text[b:]
                loss_dict["l_d_text"] = self.cri_text(real_t, fake_t, is_disc=True)
                l_d_total = l_d_total + loss_dict["l_d_text"]
        d_terms = [k for k in loss_dict if k.startswith("l_d_")]
        if logged:  # logging statistics: only where BasicSR logs them
            loss_dict.update(self._d_statistics(logits, b))
        bad_g, bad_d = self.loss_flag(loss_dict, g_terms), self.loss_flag(loss_dict, d_terms)
        active = [self.optimizer_d] + ([self.optimizer_g] if g_step else [])
        if all(steps_on_device(o) for o in active):
            if g_step:
                self.guarded_step(self.optimizer_g, "g", bad_g)
            self._backward(l_d_total, "d")
            self.guarded_step(self.optimizer_d, "d", bad_d)
            self.defer_check(current_iter, loss_dict, g_terms, d_terms, bad_g, bad_d)
            ok = 1 - torch.maximum(bad_g, bad_d)
            skip_d = None
        else:  # an optimizer that cannot skip on the device: one read of both flags, now
            skip_g, skip_d = (v > 0 for v in torch.stack([bad_g, bad_d]).tolist())
            if skip_g or skip_d:  # the warning's values (a skipped step is rare)
                terms = [k for k in (*g_terms, *d_terms) if torch.is_tensor(loss_dict[k])]
                values = dict(zip(terms, torch.stack([loss_dict[k].detach().float().mean() for k in terms]).tolist()))
                self.note_skips(current_iter, values, set(g_terms), skip_g, skip_d)
            else:
                self.count_skip(False)
            if g_step and not skip_g:
                self._host_step(self.optimizer_g, "g")
            if not skip_d:
                self._backward(l_d_total, "d")
                self._host_step(self.optimizer_d, "d")
            ok = None if skip_g or skip_d else True
        if logits.text_features is not None:  # cached for the next G step (the cost rule)
            new = logits.text_features.detach()
            old = getattr(self, "text_cache", None)
            if skip_d is None:  # the device decides: the old cache stays where the D step was skipped
                self.text_cache = new if old is None else torch.where(bad_d > 0, old, new)
            elif not skip_d:
                self.text_cache = new

        self.log_dict = self.reduce_loss_dict(loss_dict) if logged else DeferredLog(loss_dict)
        if self.ema_decay > 0 and ok is not None:
            if ok is True:
                self.model_ema(decay=self.ema_decay)
            else:
                self.masked_ema(self.ema_decay, ok)
        if logged or not self.opt.get("dist"):  # ranks stop at one iteration: under DDP only where all log
            self.resolve_checks(force=logged)
        self.stop_if_limit(current_iter)

    def _d_statistics(self, logits, b: int) -> dict:
        """Discriminator outputs and accuracies on real and fake (logged iterations only)."""
        stats = {}
        if self.cri_feat:
            real_f, fake_f = [m[:b].detach() for m in logits.feat], [m[b:].detach() for m in logits.feat]
            stats["out_d_feat_real"] = torch.stack([m.float().mean() for m in real_f]).mean()
            stats["out_d_feat_fake"] = torch.stack([m.float().mean() for m in fake_f]).mean()
            stats["acc_d_feat"] = _accuracy(real_f, fake_f)
        if self.cri_text:
            real_t, fake_t = logits.text[:b].detach(), logits.text[b:].detach()
            stats["out_d_text_real"] = real_t.float().mean()
            stats["out_d_text_fake"] = fake_t.float().mean()
            stats["acc_d_text"] = _accuracy([real_t], [fake_t])
        return stats

    def reduce_loss_dict(self, loss_dict):
        """BasicSR's reduce_loss_dict reading every logged value back in one device sync (BasicSR
        reads them one ``.item()`` at a time); distributed runs keep BasicSR's reduction."""
        if self.opt["dist"] or not all(torch.is_tensor(v) for v in loss_dict.values()):
            return super().reduce_loss_dict(loss_dict)
        with torch.no_grad():
            values = torch.stack([v.detach().float().mean() for v in loss_dict.values()]).tolist() if loss_dict else []
        return OrderedDict(zip(loss_dict, values))

    def _cached_text_features(self, disc) -> torch.Tensor | None:
        """Prompt features of the last D step (constant in the G step). When there is none yet
        (first iteration) they are computed here; the contexts are frozen in the G step, and with
        ``reuse_features`` the D step reuses this pass (one text-tower pass per iteration). Saved
        in the training state, so a resumed run uses the same ones."""
        if not disc.use_text:
            return None
        if getattr(self, "text_cache", None) is None:
            self.text_cache = disc.text_features().detach()
        return self.text_cache

    def _extra_training_state(self) -> dict:
        extra = super()._extra_training_state()
        if getattr(self, "text_cache", None) is not None:
            extra["text_cache"] = self.text_cache.detach().cpu()
        return extra

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        # A state saved by an optimizer of another kind (foreach before fused was the default) brings its
        # `fused` setting along: keep the one chosen at build, with the step counts where fused wants them.
        for optimizer, fused in zip(self.optimizers, getattr(self, "_fused", [])):
            for group in optimizer.param_groups:
                if bool(group.get("fused")) != fused:
                    group["fused"], group["foreach"] = fused, None if fused else group.get("foreach")
                    for p in group["params"]:
                        step = optimizer.state.get(p, {}).get("step")
                        if fused and torch.is_tensor(step):
                            optimizer.state[p]["step"] = step.to(p.device, torch.float32)
        cache = resume_state.get("text_cache")
        self.text_cache = None if cache is None else cache.to(self.device)

    def _relativistic(self) -> bool:
        return any(getattr(c, "relativistic", False) for c in (self.cri_feat, self.cri_text) if c is not None)

    def validation(self, dataloader, current_iter, tb_logger, save_img=False):
        """BasicSR's validation; a ``calculate_sfd_iqa`` metric with ``checkpoint: current`` scores the
        outputs with the discriminator being trained (tile = the training crop size)."""
        from sfd_metric.sfd_iqa_metric import live_discriminator

        disc = self.get_bare_model(self.net_d)
        with live_discriminator(disc, train_patch_size(self.opt) or 256):
            out = super().validation(dataloader, current_iter, tb_logger, save_img)
        record = disc.config
        if disc.backbone.random_weights or record.get("clip_weights_random_calibrated"):
            # repeated with every validation, so it is never buried under the training log
            get_root_logger().warning(
                f"Validation @ {current_iter}: scores from a stand-in CLIP ({disc.clip_description})"
            )
        return out

    def test(self):
        """SRModel.test, padding the input to ``network_g.window_size`` (SwinIR) when set."""
        window = self.opt["network_g"].get("window_size")
        if not window:
            return super().test()
        scale = self.opt.get("scale", 1)
        lq = self.lq
        h, w = lq.shape[-2:]
        self.lq = F.pad(lq, (0, (-w) % window, 0, (-h) % window), mode="reflect")
        try:
            super().test()
        finally:
            self.lq = lq
        self.output = self.output[..., : h * scale, : w * scale]
