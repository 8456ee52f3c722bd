"""The symmetric contrastive loss of CLIP over the *global* batch.

With several ranks, every rank gathers all ranks' features with :class:`GatherWithGrad`
(backward: the incoming gradients summed over ranks, this rank's slice kept) and computes
the loss of its own rows against every column ("local loss"). Because DDP averages the
parameter gradients over ranks and the gather's backward sums them, the result equals the
gradient of the mean loss over the concatenated batch on one process (tested).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


class GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 that lets gradients flow back to every rank's input. Works on
    gloo too (it uses all_reduce, not reduce_scatter). Every rank must pass the same shape."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world, rank = dist.get_world_size(), dist.get_rank()
        ctx.rank, ctx.n = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor,
              logit_scale: torch.Tensor) -> torch.Tensor:
    """Mean of image->text and text->image cross-entropy over the N x N logits
    ``scale * image @ text.T`` (features already L2-normalised); the matching pair of row i
    is column i. Across ranks the columns are the global batch and the rows this rank's."""
    if distributed():
        rank, n = dist.get_rank(), image_features.shape[0]
        all_images = GatherWithGrad.apply(image_features)
        all_texts = GatherWithGrad.apply(text_features)
        logits_per_image = logit_scale * image_features @ all_texts.T
        logits_per_text = logit_scale * text_features @ all_images.T
        labels = torch.arange(n, device=image_features.device) + rank * n
    else:
        logits_per_image = logit_scale * image_features @ text_features.T
        logits_per_text = logits_per_image.T
        labels = torch.arange(image_features.shape[0], device=image_features.device)
    return (F.cross_entropy(logits_per_image.float(), labels)
            + F.cross_entropy(logits_per_text.float(), labels)) / 2
