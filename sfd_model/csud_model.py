"""CSUDModel: unsupervised deraining from unpaired rainy/clean images (docs/method.md, CSUD).

Networks (YAML keys): ``network_g`` the derainer Dr (e.g. CSUDNAFNet; saved as ``net_g``, the model
you deploy), ``network_t`` the rain generator T (CSUDRainGenerator, ``net_t``), ``network_d`` the
PatchGAN D (CSUDPatchDiscriminator, ``net_d``). Each is resumed by BasicSR's ``check_resume`` rule.

One iteration, A = real rainy batch, B = real clean batch (sg = stop-gradient)::

    R~ = T(B, A)   B^ = Dr(sg(R~))   A^ = Dr(A)
    A1~ = T(A^, A)   A2~ = T(A^, R~)   R2~ = T(B^, R~)        (adversarial terms)
    S1 = T(B, B)   S2 = T(B, A^)   S3 = T(B, B^)               (self-reconstruction)

T and Dr step together on the sum of every generator-side term (one backward, no retain_graph);
then D steps on LSGAN(D(A), real) + LSGAN(D(sg(R~)), fake). Calls that share a network and do not
depend on each other are batched: T runs twice, Dr once, D once per step.
"""

from __future__ import annotations

import os.path as osp
from collections import OrderedDict

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.metrics import calculate_metric
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import MODEL_REGISTRY

import sfd_data.unpaired_rain_dataset  # noqa: F401  registers CSUDUnpairedRainDataset (sfd_data scans *_data.py)
from sfd_model.model_utils import ResumableMixin
from sfd_utils.options_check import check_options

# Names of the images of one iteration, in the order the authors' code computes them.
IMAGE_NAMES = (
    "pseudo_rainy",
    "derained_pseudo",
    "derained_real",
    "rerain_a1",
    "rerain_a2",
    "rerain_r2",
    "s1",
    "s2",
    "s3",
)
# Images D judges in the generator step, with the suffix of their logged loss.
GAN_TERMS = (("pseudo_rainy", "pseudo"), ("rerain_a2", "a2"), ("rerain_a1", "a1"), ("rerain_r2", "r2"))


def _split(x: torch.Tensor, n: int) -> list[torch.Tensor]:
    return list(x.split(n, dim=0))


@MODEL_REGISTRY.register()
class CSUDModel(ResumableMixin, SRGANModel):
    """CSUD training (rain generator + derainer + PatchGAN) on unpaired batches.

    Training batches: ``{'rain': A, 'clean': B}`` (CSUDUnpairedRainDataset), (N, 3, H, W) in [0, 1],
    same shape. Validation/test batches: ``{'lq': rainy, 'gt': clean (optional)}``.

    YAML ``train`` keys (weights = authors' defaults; a term whose key is null is off):
        optim_g / optim_t / optim_d: optimizers of Dr, T, D (required).
        gan_opt: GANLoss (lsgan, weight 1) for T's four adversarial terms and D (required).
        cc_opt: CSUDChannelConsistencyLoss (10).
        self_recon_t_opt: CSUDSelfReconstructionLoss on (S1, S2) (5).
        self_recon_dr_opt: CSUDSelfReconstructionLoss on (S3, S2) (0.5).
        pixel_opt: L1Loss on (B^, B) (1). ssim_opt: CSUDSSIMLoss (1).
        perceptual_opt: SFDPerceptualLoss on (B^, B) (VGG19 conv1_2..conv5_4, 0.2).
        joint_objective: true (default, the authors' effective objective): T and Dr both step on the
            sum of all generator-side terms; false [ours]: T steps on the cc/self_recon_t/gan terms
            only and Dr on the pixel/ssim/perceptual/self_recon_dr terms only (two backward passes).
        ema_decay: EMA of Dr (0 = off). scheduler, total_iter, warmup_iter: as BasicSR.
        nonfinite_max_skips: a step with a NaN/inf term is skipped and logged; after this many
            iterations in a row the state is saved and training stops (default 5; 0 = never stop).
    ``val``: ``metrics`` (computed only for images with GT), ``tb_images`` (validation images
    written to TensorBoard with the latest training samples; default 2).
    """

    def __init__(self, opt: dict) -> None:
        check_options(opt, datasets=False)  # pretrained networks and VGG weights, named by YAML key
        super().__init__(opt)

    # ------------------------------------------------------------------ setup
    def init_training_settings(self) -> None:
        train_opt = self.opt["train"]
        for key in ("network_t", "network_d"):
            if not self.opt.get(key):
                raise KeyError(f"{key}: CSUDModel needs a rain generator (network_t) and a discriminator (network_d)")
        for key in ("optim_g", "optim_t", "optim_d", "gan_opt"):
            if not train_opt.get(key):
                raise KeyError(f"train.{key}: required by CSUDModel")
        self.net_t = self.model_to_device(build_network(self.opt["network_t"]))
        self.print_network(self.net_t)
        load_path = self.opt["path"].get("pretrain_network_t")
        if load_path is not None:
            param_key = self.opt["path"].get("param_key_t", "params")
            self.load_network(self.net_t, load_path, self.opt["path"].get("strict_load_t", True), param_key)
        self.net_t.train()
        # net_d, EMA, pixel / perceptual / GAN losses, optimizers (g, d, t) and schedulers.
        super().init_training_settings()

        def optional(key: str):
            return build_loss(train_opt[key]).to(self.device) if train_opt.get(key) else None

        self.cri_cc = optional("cc_opt")
        self.cri_sr_t = optional("self_recon_t_opt")
        self.cri_sr_dr = optional("self_recon_dr_opt")
        self.cri_ssim = optional("ssim_opt")
        self._train_samples: dict[str, torch.Tensor] = {}
        self.joint_objective = bool(train_opt.get("joint_objective", True))
        self._nonfinite_limit()  # a bad train.nonfinite_max_skips stops here, not at the first NaN
        terms = ("cc_opt", "self_recon_t_opt", "self_recon_dr_opt", "pixel_opt", "ssim_opt", "perceptual_opt")
        get_root_logger().info(
            f"CSUDModel: terms on: {[k for k in terms if train_opt.get(k)]} + gan_opt; "
            f"{'joint' if self.joint_objective else 'split'} generator objective"
        )

    def setup_optimizers(self) -> None:
        super().setup_optimizers()  # optimizer_g (Dr), optimizer_d
        opt_t = dict(self.opt["train"]["optim_t"])
        self.optimizer_t = self.get_optimizer(opt_t.pop("type"), self.net_t.parameters(), **opt_t)
        self.optimizers.append(self.optimizer_t)

    def feed_data(self, data: dict) -> None:
        self.note_data_position(data)
        if "rain" in data:
            self.rain = data["rain"].to(self.device)
            self.clean = data["clean"].to(self.device)
            if self.rain.shape != self.clean.shape:
                raise ValueError(
                    f"CSUDModel: rainy batch {tuple(self.rain.shape)} and clean batch {tuple(self.clean.shape)} "
                    "must have the same shape (same gt_size and batch size)"
                )
        else:
            self.lq = data["lq"].to(self.device)
            self.gt = data["gt"].to(self.device) if "gt" in data else None

    # ------------------------------------------------------------------ one iteration
    def forward_images(self, batched: bool = True) -> dict[str, torch.Tensor]:
        """The nine images of one iteration (IMAGE_NAMES), with graphs to T and Dr.

        ``batched=False`` calls the networks once per image, in the authors' order (benchmark).
        """
        a, b = self.rain, self.clean
        t, dr = self.net_t, self.net_g
        if not batched:
            r = t(b, a)
            b_hat = dr(r.detach())
            a_hat = dr(a)
            outs = (r, b_hat, a_hat, t(a_hat, a), t(a_hat, r), t(b_hat, r), t(b, b), t(b, a_hat), t(b, b_hat))
            return dict(zip(IMAGE_NAMES, outs))
        n = b.shape[0]
        r, s1 = _split(t(torch.cat([b, b]), torch.cat([a, b])), n)
        b_hat, a_hat = _split(dr(torch.cat([r.detach(), a])), n)  # sg(R~): Dr's pseudo-pair loss leaves T alone
        a1, a2, r2, s2, s3 = _split(
            t(torch.cat([a_hat, a_hat, b_hat, b, b]), torch.cat([a, r, r, a_hat, b_hat])),
            n,
        )
        outs = (r, b_hat, a_hat, a1, a2, r2, s1, s2, s3)
        return dict(zip(IMAGE_NAMES, outs))

    def generator_losses(
        self, imgs: dict[str, torch.Tensor], batched: bool = True
    ) -> tuple[OrderedDict, torch.Tensor, torch.Tensor]:
        """(loss_dict, T's terms, Dr's terms) as scalar tensors; D must be frozen by the caller."""
        b = self.clean
        zero = b.new_zeros(())
        loss_dict: OrderedDict = OrderedDict()
        l_t, l_dr = zero, zero

        def add(name: str, value: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
            loss_dict[name] = value
            return total + value

        if self.cri_cc:
            l_t = add("l_t_cc", self.cri_cc(imgs["pseudo_rainy"], b), l_t)
        if self.cri_sr_t:
            l_t = add("l_t_self_recon", self.cri_sr_t([imgs["s1"], imgs["s2"]], b), l_t)
        disc = self.get_bare_model(self.net_d)  # no D gradient in this step: DDP must not expect one
        fakes = [imgs[name] for name, _ in GAN_TERMS]
        logits = _split(disc(torch.cat(fakes)), b.shape[0]) if batched else [disc(x) for x in fakes]
        l_gan = zero
        for (_, suffix), logit in zip(GAN_TERMS, logits):
            l_gan = add(f"l_t_gan_{suffix}", self.cri_gan(logit, True, is_disc=False), l_gan)
        loss_dict["l_t_gan"] = l_gan
        l_t = l_t + l_gan

        out = imgs["derained_pseudo"]
        if self.cri_pix:
            l_dr = add("l_dr_pix", self.cri_pix(out, b), l_dr)
        if self.cri_ssim:
            l_dr = add("l_dr_ssim", self.cri_ssim(out, b), l_dr)
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(out, b)
            if l_percep is not None:
                l_dr = add("l_dr_percep", l_percep, l_dr)
            if l_style is not None:
                l_dr = add("l_dr_style", l_style, l_dr)
        if self.cri_sr_dr:
            l_dr = add("l_dr_self_recon", self.cri_sr_dr([imgs["s3"], imgs["s2"]], b), l_dr)
        loss_dict["l_t_total"] = l_t.detach()
        loss_dict["l_dr_total"] = l_dr.detach()
        return loss_dict, l_t, l_dr

    def set_d_trainable(self, flag: bool) -> None:
        for p in self.net_d.parameters():
            p.requires_grad = flag

    def generator_step(self, current_iter: int | None = None) -> tuple[dict[str, torch.Tensor], OrderedDict]:
        """Forward the nine images and step T and Dr on their joint objective. Returns (images, losses).
        A non-finite term skips both steps (logged; ``self.step_skipped`` is then True)."""
        self.set_d_trainable(False)
        self.optimizer_t.zero_grad(set_to_none=True)
        self.optimizer_g.zero_grad(set_to_none=True)
        imgs = self.forward_images()
        loss_dict, l_t, l_dr = self.generator_losses(imgs)
        bad = self.nonfinite_terms(loss_dict)
        self.step_skipped = bool(bad)
        if bad:  # a NaN step would poison T, Dr and every later checkpoint
            self.skip_step(current_iter, "generator (T and Dr)", bad, loss_dict)
            return imgs, loss_dict
        if self.joint_objective:
            (l_t + l_dr).backward()  # one backward: both graphs are freed as they are used
        else:  # each network on its own terms; the graphs overlap (S2, S3), so the first pass keeps them
            l_t.backward(inputs=[p for p in self.net_t.parameters() if p.requires_grad], retain_graph=True)
            l_dr.backward(inputs=[p for p in self.net_g.parameters() if p.requires_grad])
        self.optimizer_t.step()
        self.optimizer_g.step()
        return imgs, loss_dict

    def discriminator_step(
        self, pseudo_rainy: torch.Tensor, loss_dict: OrderedDict, batched: bool = True, current_iter: int | None = None
    ) -> None:
        """Step D on real rainy ``self.rain`` vs ``sg(pseudo_rainy)``; adds its terms to ``loss_dict``.
        A non-finite term skips the step (logged; ``self.step_skipped`` is then True)."""
        self.step_skipped = False
        self.set_d_trainable(True)
        self.optimizer_d.zero_grad(set_to_none=True)
        real, fake = self.rain, pseudo_rainy.detach()
        if batched:  # one pass through the (DDP) module
            out_real, out_fake = _split(self.net_d(torch.cat([real, fake])), real.shape[0])
        else:
            out_real, out_fake = self.net_d(real), self.net_d(fake)
        l_real = self.cri_gan(out_real, True, is_disc=True)
        l_fake = self.cri_gan(out_fake, False, is_disc=True)
        loss_dict["l_d_real"] = l_real.detach()
        loss_dict["l_d_fake"] = l_fake.detach()
        loss_dict["out_d_real"] = out_real.detach().mean()
        loss_dict["out_d_fake"] = out_fake.detach().mean()
        bad = self.nonfinite_terms(loss_dict, ("l_d_real", "l_d_fake"))
        if bad:
            self.skip_step(current_iter, "discriminator", bad, loss_dict)
            self.step_skipped = True
            return
        (l_real + l_fake).backward()
        self.optimizer_d.step()

    def optimize_parameters(self, current_iter: int) -> None:
        imgs, loss_dict = self.generator_step(current_iter)
        skipped = self.step_skipped
        self.discriminator_step(imgs["pseudo_rainy"], loss_dict, current_iter=current_iter)
        skipped = skipped or self.step_skipped
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0 and not skipped:
            self.model_ema(decay=self.ema_decay)
        self.end_nonfinite_check(current_iter, skipped)
        # First item of each image, for TensorBoard at the next validation (tiny copies).
        self._train_samples = {
            "rainy": self.rain[:1].detach().clone(),
            "clean": self.clean[:1].detach().clone(),
            **{k: v[:1].detach().clone() for k, v in imgs.items() if k in ("pseudo_rainy", "derained_real")},
        }

    # ------------------------------------------------------------------ inference, validation, saving
    def test(self) -> None:
        net = self.net_g_ema if hasattr(self, "net_g_ema") else self.get_bare_model(self.net_g)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = net(self.lq)
        net.train(was_training)

    def get_current_visuals(self) -> OrderedDict:
        out = OrderedDict(lq=self.lq.detach().cpu(), result=self.output.detach().cpu())
        if getattr(self, "gt", None) is not None:
            out["gt"] = self.gt.detach().cpu()
        return out

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img) -> None:
        """Derain every image; PSNR/SSIM (as configured) on the images that have GT; no GT is fine."""
        dataset_name = dataloader.dataset.opt["name"]
        metrics_opt = self.opt["val"].get("metrics") or {}
        n_tb = int(self.opt["val"].get("tb_images", 2))
        values: dict[str, list[float]] = {m: [] for m in metrics_opt}
        without_gt = 0
        for idx, val_data in enumerate(dataloader):
            name = osp.splitext(osp.basename(val_data["lq_path"][0]))[0]
            self.feed_data(val_data)
            self.test()
            visuals = self.get_current_visuals()
            out_img = tensor2img([visuals["result"]])
            if save_img:
                folder = name if self.opt["is_train"] else dataset_name
                suffix = current_iter if self.opt["is_train"] else (self.opt["val"].get("suffix") or self.opt["name"])
                imwrite(out_img, osp.join(self.opt["path"]["visualization"], folder, f"{name}_{suffix}.png"))
            if "gt" in visuals:
                data = {"img": out_img, "img2": tensor2img([visuals["gt"]])}
                for metric, mopt in metrics_opt.items():
                    values[metric].append(float(calculate_metric(data, mopt)))
            else:
                without_gt += 1
            if tb_logger is not None and idx < n_tb:
                row = [visuals["lq"][0], visuals["result"][0].clamp(0, 1)]
                row += [visuals["gt"][0]] if "gt" in visuals else []
                tb_logger.add_image(f"val_{dataset_name}/{name}", torch.cat(row, dim=-1), current_iter)
            self.lq = self.output = self.gt = None
        samples = getattr(self, "_train_samples", None)
        if tb_logger is not None and samples:  # rainy | clean | pseudo rainy | derained real rainy
            row = [v[0].float().clamp(0, 1).cpu() for v in samples.values()]
            tb_logger.add_image("train/samples", torch.cat(row, dim=-1), current_iter)
        logger = get_root_logger()
        if without_gt:
            logger.info(f"Validation {dataset_name}: {without_gt} image(s) without GT, derained without metrics")
        if not metrics_opt or not any(values.values()):
            return
        self.metric_results = {m: sum(v) / len(v) for m, v in values.items()}
        self._initialize_best_metric_results(dataset_name)
        for metric, value in self.metric_results.items():
            self._update_best_metric_result(dataset_name, metric, value, current_iter)
        self._log_validation_metric_values(current_iter, dataset_name, tb_logger)

    def save(self, epoch: int, current_iter: int) -> None:
        if hasattr(self, "net_g_ema"):
            self.save_network([self.net_g, self.net_g_ema], "net_g", current_iter, param_key=["params", "params_ema"])
        else:
            self.save_network(self.net_g, "net_g", current_iter)
        self.save_network(self.net_t, "net_t", current_iter)
        self.save_network(self.net_d, "net_d", current_iter)
        self.save_training_state(epoch, current_iter)


TINY_NETWORKS = {
    "network_g": {
        "type": "CSUDNAFNet",
        "width": 8,
        "middle_blk_num": 1,
        "enc_blk_nums": [1, 1],
        "dec_blk_nums": [1, 1],
    },
    "network_t": {"type": "CSUDRainGenerator", "num_feat": 8, "num_block": 1},
    "network_d": {"type": "CSUDPatchDiscriminator", "ndf": 8, "n_layers": 3},
}
AUTHORS_NETWORKS = {
    "network_g": {
        "type": "CSUDNAFNet",
        "width": 32,
        "middle_blk_num": 12,
        "enc_blk_nums": [2, 2, 4, 8],
        "dec_blk_nums": [2, 2, 2, 2],
    },
    "network_t": {"type": "CSUDRainGenerator", "num_feat": 64, "num_block": 6},
    "network_d": {"type": "CSUDPatchDiscriminator", "ndf": 64, "n_layers": 3},
}


def csud_options(exp_dir: str, networks: dict | None = None, train: dict | None = None, device: str = "cpu") -> dict:
    """Options for ``basicsr.models.build_model`` (CSUDModel) in code: tests, benchmarks.

    ``networks``: ``network_g/t/d`` dicts (default: TINY_NETWORKS); ``train``: keys overriding the
    authors' training options (a None value removes the key; the VGG term is off by default).
    Model/state folders are created under ``exp_dir``.
    """
    import copy
    import os

    paths = {k: os.path.join(exp_dir, k) for k in ("models", "training_states", "visualization", "log")}
    for p in paths.values():
        os.makedirs(p, exist_ok=True)
    adam = {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99]}
    train_opt = {
        "ema_decay": 0,
        "optim_g": dict(adam),
        "optim_t": dict(adam),
        "optim_d": dict(adam),
        "scheduler": {"type": "MultiStepLR", "milestones": [20000, 40000, 60000, 80000], "gamma": 0.5},
        "total_iter": 100000,
        "warmup_iter": -1,
        "gan_opt": {"type": "GANLoss", "gan_type": "lsgan", "loss_weight": 1.0},
        "cc_opt": {"type": "CSUDChannelConsistencyLoss", "loss_weight": 10.0},
        "self_recon_t_opt": {"type": "CSUDSelfReconstructionLoss", "loss_weight": 5.0},
        "self_recon_dr_opt": {"type": "CSUDSelfReconstructionLoss", "loss_weight": 0.5},
        "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0},
        "ssim_opt": {"type": "CSUDSSIMLoss", "loss_weight": 1.0},
    }
    for key, value in (train or {}).items():
        if value is None:
            train_opt.pop(key, None)
        else:
            train_opt[key] = value
    nets = copy.deepcopy({**TINY_NETWORKS, **(networks or {})})
    return {
        "name": os.path.basename(os.path.normpath(exp_dir)),
        "model_type": "CSUDModel",
        "scale": 1,
        "num_gpu": 1 if device == "cuda" else 0,
        "dist": False,
        "rank": 0,
        "world_size": 1,
        "is_train": True,
        **nets,
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None, **paths},
        "train": train_opt,
        "val": {"metrics": {}},
        "logger": {"print_freq": 1, "use_tb_logger": False},
    }
