"""Infrastructure shared by every stage (the network layer in :mod:`pipeline.core.net`)."""
