"""Stage 1: the CLIP query list ("metadata") from a Wikipedia dump, pageviews and WordNet."""
