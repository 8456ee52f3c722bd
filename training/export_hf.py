"""A checkpoint of `wit train` as a Hugging Face ``transformers`` ``CLIPModel`` folder:
``config.json`` + ``model.safetensors``, the tokenizer (``tokenizer.json`` with the
``<start_of_text> ... <end_of_text>`` wrapping, ``split_special_tokens`` on, returning
``input_ids`` and ``attention_mask`` only) and a ``preprocessor_config.json`` that reproduces
our image preprocessing, so ``CLIPProcessor`` gives ``wit eval``'s embeddings. It needs
transformers >= 5.21 (``MIN_TRANSFORMERS``, the ``hf`` extra's minimum). Our model has CLIPModel's exact layout (training/clip/model.py), so
the weights map one to one: only the fused attention projection is split into q/k/v and the
projection matrices are transposed into bias-free Linear weights."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any

import torch

from pipeline.core.errors import InputError
from training.clip.configs import ModelConfig
from training.clip.model import CLIP, IMAGE_MEAN, IMAGE_STD
from training.clip.tokenizer import EOT, PAD, SOT, CaptionTokenizer

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, which training/clip/model.py uses
# the oldest transformers whose CLIPImageProcessor does what training/clip/preprocess.py does
# (5.21 composites transparent images onto white; 5.20 and 4.x drop the alpha band) and whose
# CLIPProcessor takes this tokenizer (4.x insists on CLIPTokenizerFast); the `hf` extra's
# minimum in setup.py
MIN_TRANSFORMERS = (5, 21)


def check_transformers_version(version: str) -> None:
    """An :class:`InputError` unless ``version`` is at least ``MIN_TRANSFORMERS``."""
    parts = re.findall(r"\d+", version)[:2]
    found = tuple(int(p) for p in parts) if len(parts) == 2 else (0, 0)
    if found < MIN_TRANSFORMERS:
        need = ".".join(map(str, MIN_TRANSFORMERS))
        raise InputError(f"--format hf needs transformers >= {need} (found {version}): "
                         f"pip install 'webimagetext[hf]' or 'transformers>={need}'")


def hf_config(cfg: ModelConfig, tokenizer: CaptionTokenizer, logit_scale: float) -> dict[str, Any]:
    """The ``CLIPConfig`` keyword arguments of a model of ``cfg``."""
    if cfg.pool != "cls":
        raise InputError(f"pool {cfg.pool!r}: transformers' CLIPModel pools the class token; "
                         "only pool='cls' models can be exported")
    if tokenizer.eot_id == 2:
        # CLIPTextTransformer reads eos_token_id == 2 as a pre-2023 config and pools at the
        # largest token id instead of the end token
        raise InputError("the tokenizer's <end_of_text> has id 2, which transformers' CLIP "
                         "treats as a legacy config; retrain with this version's tokenizer")
    common = {"hidden_act": "gelu", "layer_norm_eps": LAYER_NORM_EPS,
              "projection_dim": cfg.embed_dim, "attention_dropout": 0.0}
    text = {**common, "vocab_size": tokenizer.vocab_size, "hidden_size": cfg.text_width,
            "intermediate_size": int(cfg.text_width * cfg.mlp_ratio),
            "num_hidden_layers": cfg.text_layers, "num_attention_heads": cfg.text_heads,
            "max_position_embeddings": cfg.context_length, "pad_token_id": tokenizer.pad_id,
            "bos_token_id": tokenizer.sot_id, "eos_token_id": tokenizer.eot_id}
    vision = {**common, "hidden_size": cfg.vision_width,
              "intermediate_size": int(cfg.vision_width * cfg.mlp_ratio),
              "num_hidden_layers": cfg.vision_layers, "num_attention_heads": cfg.vision_heads,
              "image_size": cfg.image_size, "patch_size": cfg.patch_size, "num_channels": 3}
    return {"text_config": text, "vision_config": vision, "projection_dim": cfg.embed_dim,
            "logit_scale_init_value": logit_scale}


def _blocks(ours: dict[str, torch.Tensor], src: str, dst: str, layers: int, width: int
            ) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for i in range(layers):
        a, b = f"{src}.transformer.blocks.{i}", f"{dst}.encoder.layers.{i}"
        for part in ("weight", "bias"):
            q, k, v = ours[f"{a}.qkv.{part}"].split(width)
            out |= {f"{b}.self_attn.q_proj.{part}": q, f"{b}.self_attn.k_proj.{part}": k,
                    f"{b}.self_attn.v_proj.{part}": v,
                    f"{b}.self_attn.out_proj.{part}": ours[f"{a}.out.{part}"],
                    f"{b}.layer_norm1.{part}": ours[f"{a}.ln_1.{part}"],
                    f"{b}.layer_norm2.{part}": ours[f"{a}.ln_2.{part}"],
                    f"{b}.mlp.fc1.{part}": ours[f"{a}.mlp.0.{part}"],
                    f"{b}.mlp.fc2.{part}": ours[f"{a}.mlp.2.{part}"]}
    return out


def hf_state_dict(model: CLIP) -> dict[str, torch.Tensor]:
    """Our weights under CLIPModel's parameter names."""
    cfg, ours = model.cfg, model.state_dict()
    out = {"logit_scale": ours["logit_scale"],
           "text_model.embeddings.token_embedding.weight": ours["text.token_embedding.weight"],
           "text_model.embeddings.position_embedding.weight": ours["text.positional_embedding"],
           "text_projection.weight": ours["text.proj"].T,
           "vision_model.embeddings.class_embedding": ours["visual.class_embedding"],
           "vision_model.embeddings.patch_embedding.weight": ours["visual.patch_embed.weight"],
           "vision_model.embeddings.position_embedding.weight": ours["visual.positional_embedding"],
           "visual_projection.weight": ours["visual.proj"].T}
    for part in ("weight", "bias"):
        out[f"text_model.final_layer_norm.{part}"] = ours[f"text.ln_final.{part}"]
        out[f"vision_model.pre_layrnorm.{part}"] = ours[f"visual.ln_pre.{part}"]
        out[f"vision_model.post_layernorm.{part}"] = ours[f"visual.ln_post.{part}"]
    out |= _blocks(ours, "text", "text_model", cfg.text_layers, cfg.text_width)
    out |= _blocks(ours, "visual", "vision_model", cfg.vision_layers, cfg.vision_width)
    return {k: v.detach().float().contiguous().clone() for k, v in out.items()}


# what CLIPModel's get_text_features / forward take: a tokenizer returning more (4.x's
# PreTrainedTokenizerFast adds token_type_ids by default) breaks model(**tokenizer(...))
MODEL_INPUT_NAMES = ["input_ids", "attention_mask"]
# the tokenizer class the folder names: one every supported transformers has (4.45 lacks
# 5.x's TokenizersBackend, which 5.x writes by default; 5.x maps this name to it)
TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def hf_tokenizer(tokenizer: CaptionTokenizer, context_length: int) -> Any:
    """A ``PreTrainedTokenizerFast`` that gives the same ids as ``tokenizer.encode`` (with
    ``padding="max_length"``; any padding gives the same embeddings) and returns only
    ``MODEL_INPUT_NAMES``."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(tokenizer.to_json())
    backend.post_processor = processors.TemplateProcessing(
        single=f"{SOT} $A {EOT}", special_tokens=[(SOT, tokenizer.sot_id), (EOT, tokenizer.eot_id)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=SOT, eos_token=EOT, pad_token=PAD,
        model_max_length=context_length, split_special_tokens=True,
        padding_side="right", truncation_side="right", model_input_names=MODEL_INPUT_NAMES)


def _portable_tokenizer_config(folder: str) -> None:
    """``tokenizer_config.json`` as every supported transformers reads it: the class
    ``TOKENIZER_CLASS``, the model inputs spelled out (4.x's default adds token_type_ids),
    and no 5.x-only ``backend`` key."""
    import json

    path = os.path.join(folder, "tokenizer_config.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    config.pop("backend", None)
    config.update(tokenizer_class=TOKENIZER_CLASS, model_input_names=MODEL_INPUT_NAMES)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")


def image_processor_config(cfg: ModelConfig) -> dict[str, Any]:
    """CLIPImageProcessor settings of our evaluation transform (``training/clip/preprocess.py``,
    which is CLIP's: bicubic resize of the shorter side, centre crop, CLIP's mean/std)."""
    return {"image_processor_type": "CLIPImageProcessor", "do_resize": True,
            "size": {"shortest_edge": cfg.image_size}, "resample": 3, "do_center_crop": True,
            "crop_size": {"height": cfg.image_size, "width": cfg.image_size},
            "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
            "image_mean": list(IMAGE_MEAN), "image_std": list(IMAGE_STD), "do_convert_rgb": True}


def export_hf(model: CLIP, tokenizer: CaptionTokenizer, out: str) -> None:
    """Write the folder ``out`` (a local path) complete or not at all: it is built under a
    temporary name beside it and renamed."""
    import json

    from transformers import CLIPConfig, CLIPModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    config = CLIPConfig(**hf_config(model.cfg, tokenizer, model.logit_scale.item()))
    hf = CLIPModel(config)
    hf.load_state_dict(hf_state_dict(model), strict=True)  # every tensor mapped, none left
    if os.path.exists(out):
        raise InputError(f"{out} exists: choose another --out")
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        hf.save_pretrained(tmp, safe_serialization=True)
        hf_tokenizer(tokenizer, model.cfg.context_length).save_pretrained(tmp)
        _portable_tokenizer_config(tmp)
        with open(os.path.join(tmp, "preprocessor_config.json"), "w", encoding="utf-8") as f:
            json.dump(image_processor_config(model.cfg), f, indent=2)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
