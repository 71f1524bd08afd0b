"""The training run the ``train`` stage drives: the loop over params, resume and curves."""
