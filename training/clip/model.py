"""CLIP (Radford et al. 2021): a Vision Transformer image encoder and a causal Transformer
text encoder, linear projections into a shared embedding, L2-normalised features and a
learnable temperature (``logit_scale``, initialised to log(1/0.07), clamped to log(100)).

The layout is exactly transformers' ``CLIPModel`` (pre-LN blocks with exact GELU, LayerNorm
eps 1e-5, bias-free patch embedding and projections, class token, text pooled at the first
end-of-text token), so ``training/export_hf.py`` maps the weights one to one."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from training.clip.configs import ModelConfig

# CLIP's normalisation constants (the images arrive as uint8 and are normalised on device)
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100)


class Block(nn.Module):
    """Pre-norm residual attention block; attention uses PyTorch's fused SDPA kernels."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, causal: bool):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.ln_1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.out(y.transpose(1, 2).reshape(b, n, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float, causal: bool):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, causal) for _ in range(layers))
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


class VisionTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.image_size % cfg.patch_size:
            raise ValueError(f"image size {cfg.image_size} is not a multiple of patch {cfg.patch_size}")
        width, self.pool = cfg.vision_width, cfg.pool
        self.patch_embed = nn.Conv2d(3, width, cfg.patch_size, cfg.patch_size, bias=False)
        n_patches = (cfg.image_size // cfg.patch_size) ** 2
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(n_patches + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, cfg.vision_layers, cfg.vision_heads,
                                       cfg.mlp_ratio, causal=False)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, cfg.embed_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # B, patches, width
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        pooled = x[:, 0] if self.pool == "cls" else x[:, 1:].mean(dim=1)
        return self.ln_post(pooled) @ self.proj


class TextTransformer(nn.Module):
    """Causal transformer; the feature of a caption is the output at its (first) end-of-text
    token, found by its id, so padding, or a pad id inside the text, cannot shift it."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, eot_id: int):
        super().__init__()
        self.eot_id = eot_id
        self.token_embedding = nn.Embedding(vocab_size, cfg.text_width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(cfg.context_length, cfg.text_width))
        self.transformer = Transformer(cfg.text_width, cfg.text_layers, cfg.text_heads,
                                       cfg.mlp_ratio, causal=True)
        self.ln_final = nn.LayerNorm(cfg.text_width)
        self.proj = nn.Parameter(cfg.text_width ** -0.5 * torch.randn(cfg.text_width, cfg.embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        x = self.ln_final(self.transformer(x))
        eot = (tokens == self.eot_id).int().argmax(dim=1)  # first end token of each row
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.proj


class CLIP(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int, eot_id: int = 1):
        """``eot_id``: the tokenizer's ``<end_of_text>`` id (1 in a vocabulary trained here)."""
        super().__init__()
        self.cfg = cfg
        self.visual = VisionTransformer(cfg)
        self.text = TextTransformer(cfg, vocab_size, eot_id)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
        self.register_buffer("image_mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)
        for block in [*self.visual.transformer.blocks, *self.text.transformer.blocks]:
            for linear in (block.qkv, block.out, *block.mlp[::2]):
                nn.init.normal_(linear.weight, std=linear.in_features ** -0.5)
                nn.init.zeros_(linear.bias)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.visual.transformer.grad_checkpointing = enabled
        self.text.transformer.grad_checkpointing = enabled

    def normalize_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW (as the loader ships them: 4x less to copy) -> normalised float."""
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        mean, std = self.image_mean, self.image_std
        assert isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor)
        return (images - mean) / std

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        features = self.visual(self.normalize_images(images))
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        features = self.text(tokens)
        return F.normalize(features, dim=-1) if normalize else features

    def forward(self, images: torch.Tensor, tokens: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image features, text features, logit scale exp'd and clamped to 100)."""
        scale = self.logit_scale.clamp(max=LOGIT_SCALE_MAX).exp()
        return self.encode_image(images), self.encode_text(tokens), scale

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep the temperature in [1/100, 1]: after every optimizer step (CLIP sec. 2.5)."""
        self.logit_scale.clamp_(0, LOGIT_SCALE_MAX)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
