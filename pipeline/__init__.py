"""webimagetext's pipeline: shared Beam/IO helpers, the ``wit`` CLI and the web stages
(``pipeline.crawl``, ``pipeline.shards``, ``pipeline.demo``)."""
