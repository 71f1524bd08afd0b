"""What a command keeps when Ctrl-C stops it, for the line the CLI prints then.

A command registers what survives an interruption (e.g. the train stage's ``last.pt``);
without a registration the line says what holds for every command: outputs are renamed into
place only when complete.
"""

from __future__ import annotations

_kept: list[str] = []


def keep(what: str) -> None:
    """Register what an interruption leaves usable, as a clause: ``"<path> keeps ..."``."""
    _kept.append(what)


def message(command: str) -> str:
    """The one line for an interrupted ``command``."""
    kept = "; ".join(_kept) or "outputs are renamed into place only when complete, so none is half-written"
    return f"interrupted: {command} stopped; {kept}"
