"""A small OpenADR 3 VTN on aiohttp (``server.py``): scriptable, records every request."""

from gateway.sim.vtn3.server import Delivery, Exchange, Vtn3Server, VtnState, serve

__all__ = ["Delivery", "Exchange", "Vtn3Server", "VtnState", "serve"]
