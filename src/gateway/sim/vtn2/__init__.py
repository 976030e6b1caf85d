"""A scripted OpenADR 2.0b VTN (openleadr's ``OpenADRServer``) and a test PKI for it."""

from gateway.sim.vtn2.server import OptRecord, ScriptedVtn, VtnTls, WireMessage, serve

__all__ = ["OptRecord", "ScriptedVtn", "VtnTls", "WireMessage", "serve"]
