"""Encoding, block-wise scoring, rank metrics and the evaluation protocols."""
