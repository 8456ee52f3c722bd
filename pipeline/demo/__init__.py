"""``wit demo``: the whole system end to end on inputs it prepares itself."""
