"""Alias of ``selfsup.theory.plots`` (this module's former path, kept for one release)."""
from selfsup.theory._alias import alias

alias(__name__, "selfsup.theory.plots")
