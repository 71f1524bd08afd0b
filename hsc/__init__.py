"""hsc: Hierarchical Semantic Correspondences for cross-modal image-text retrieval."""

__version__ = "0.1.0"
