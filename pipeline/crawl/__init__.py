"""Stage 2, crawl: web sources -> (image URL, text) candidates -> MetaCLIP substring matching
-> balancing. See docs/crawl.md; the Beam stage is :class:`pipeline.crawl.transform.Crawl`."""
