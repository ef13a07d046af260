"""TG-D: learnable prompt pairs (LPP) judged against CLIP's final image embedding (SFD, CVPR 2025).

The prompts are ``[SOS] v_1 ... v_n <class words> [EOS]`` (CoOp style); only the context vectors
``v_i`` of the positive and negative prompt are learnable, the CLIP text tower stays frozen.
"""

from __future__ import annotations

import torch
from torch import nn

from sfd_arch.clip_backbone import FrozenCLIP, eot_positions
from sfd_arch.cuda_graphs import GraphedRegion, RegionSlot


class LearnablePromptPair(nn.Module):
    """Positive/negative prompts with learnable context vectors.

    Args:
        backbone (FrozenCLIP): supplies the tokenizer, token embeddings and text tower.
        n_ctx (int): learnable context tokens per prompt. Default: 16.
        pos_words (str): class words of the positive prompt. Default: 'high quality photo.'.
        neg_words (str): class words of the negative prompt. Default: 'low quality photo.'.
        ctx_init (str | None): phrase whose token embeddings initialise both contexts (its token
            count then sets n_ctx); None: N(0, 0.02). Default: None.

    ``forward(backbone, ctx=None)`` -> (2, D) L2-normalised text features [t+, t-]; gradients reach
    ``ctx`` (default: the learnable contexts; another (2, n_ctx, width) tensor may stand in for them).
    """

    def __init__(
        self,
        backbone: FrozenCLIP,
        n_ctx: int = 16,
        pos_words: str = "high quality photo.",
        neg_words: str = "low quality photo.",
        ctx_init: str | None = None,
    ) -> None:
        super().__init__()
        if ctx_init:
            init_tokens = backbone.tokenize([ctx_init])
            n_ctx = int(init_tokens.argmax(dim=-1).item()) - 1  # tokens between SOS and EOS
            init = backbone.embed_tokens(init_tokens)[0, 1 : 1 + n_ctx]
            ctx = init[None].repeat(2, 1, 1).clone()
        else:
            if n_ctx < 1:
                raise ValueError(f"n_ctx must be >= 1, got {n_ctx}")
            ctx = torch.randn(2, n_ctx, backbone.text_width) * 0.02
        self.n_ctx = n_ctx
        n_words = int(backbone.tokenize([pos_words, neg_words]).argmax(dim=-1).max()) - 1
        if n_ctx + n_words + 2 > backbone.context_length:  # + SOS and EOS
            raise ValueError(f"n_ctx={n_ctx} plus the class words exceed CLIP's {backbone.context_length} tokens")
        placeholder = " ".join(["X"] * n_ctx)
        tokens = backbone.tokenize([f"{placeholder} {pos_words}", f"{placeholder} {neg_words}"])
        emb = backbone.embed_tokens(tokens)
        self.ctx = nn.Parameter(ctx.to(emb.dtype))
        # Derived from the frozen CLIP: not saved, rebuilt whenever the discriminator is built.
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("token_prefix", emb[:, :1].clone(), persistent=False)
        self.register_buffer("token_suffix", emb[:, 1 + n_ctx :].clone(), persistent=False)
        self.eot = eot_positions(tokens)  # constant: read once, not on every text-tower pass
        self.graphs = RegionSlot()  # CUDA graph of the text path (network_d.fast_path; set by the owner)

    def _apply(self, fn, recurse=True):
        self.graphs.clear()
        return super()._apply(fn, recurse)

    def forward(self, backbone: FrozenCLIP, ctx: torch.Tensor | None = None) -> torch.Tensor:
        ctx = self.ctx if ctx is None else ctx
        backbone._follow_autocast(ctx)
        region = self._region(backbone)
        out = None if region is None else region.run([ctx], module=self)
        if out is None:
            return backbone.encode_text_embeddings(self._embeds(ctx), self.tokens, eot=self.eot)
        backbone.num_text_forwards += 1
        return out[0]

    def graphed_vjp(self, backbone: FrozenCLIP, ctx: torch.Tensor):
        """(features (2, D) detached, ``vjp``) from the CUDA graph, or None (eager): ``vjp(grad)``
        is the gradient of the contexts for a gradient of the features, without an autograd pass."""
        region = self._region(backbone)
        backbone._follow_autocast(ctx)
        got = None if region is None else region.run_vjp([ctx], module=self)
        if got is None:
            return None
        backbone.num_text_forwards += 1
        outs, vjp = got
        return outs[0], lambda grad: vjp([grad])[0]

    def _embeds(self, ctx: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.token_prefix, ctx.to(self.token_prefix.dtype), self.token_suffix], dim=1)

    def _region(self, backbone: FrozenCLIP) -> GraphedRegion | None:
        def build(policy):
            return GraphedRegion(
                "prompt pair text path",
                policy,
                lambda ctx: (backbone.text_tower(self._embeds(ctx), self.tokens, eot=self.eot),),
                lambda: (self.token_prefix.data_ptr(), self.token_suffix.data_ptr(), backbone.state_epoch),
                repeatable_backward=True,  # prompt features served to several loss terms (clip_reuse.py)
            )

        return self.graphs.get(("text", id(backbone)), build)
