"""Stage 4: the bundled CLIP trainer (``wit train``) and its evaluation (``wit eval``).

``clip/`` is the model as a library (configs, model, tokenizer, checkpoint format,
inference preprocessing) that the trainer, evaluation, export and the shards stage's CLIP
filter import. The trainer: ``shard_reading`` and ``batch_stream`` (WebDataset streaming),
``sample_decoding`` (training crops and texts), ``loss`` (symmetric contrastive loss over the
global batch), ``optim``, ``rng_state``, ``train`` (the loop); ``evaluate`` (zero-shot, linear
probe, retrieval), ``export_hf`` (transformers CLIPModel), ``synthetic`` (test/benchmark shards).
"""
