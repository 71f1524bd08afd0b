"""Data: sources and download, the synthetic generator, SCAN's files, vocabulary, HDF5, batches."""
