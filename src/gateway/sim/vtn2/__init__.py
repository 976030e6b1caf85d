"""A scripted OpenADR 2.0b VTN (openleadr's ``OpenADRServer``) and a test PKI for it."""

from gateway.sim.vtn2.server import ScriptedVtn, VtnTls, serve

__all__ = ["ScriptedVtn", "VtnTls", "serve"]
