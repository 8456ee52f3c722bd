"""Stage 4: the bundled CLIP trainer (``wit train``) and its evaluation (``wit eval``).

Modules: ``configs`` (named model sizes), ``model`` (ViT + causal text transformer),
``loss`` (symmetric contrastive loss over the global batch), ``tokenizer`` (byte-level BPE),
``data`` (WebDataset streaming), ``optim``, ``checkpoint``, ``train`` (the loop),
``evaluate`` (zero-shot, linear probe, retrieval), ``synthetic`` (test/benchmark shards).
"""
