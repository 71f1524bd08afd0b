"""Import of the checkpoints released by the LHSC and SGRAF authors (``hsc import``)."""
