"""One Typer command per DVC stage; each parses its options and params and calls ``hsc``."""
