"""A small OpenADR 3.0.1 VTN on aiohttp (``server.py``): full CRUD on its five collections,
OAuth scopes, notifications; scriptable (``state.py``), loadable from JSON (``files.py``)."""

from gateway.sim.vtn3.server import Vtn3Server, serve
from gateway.sim.vtn3.state import Delivery, Exchange, VtnState

__all__ = ["Delivery", "Exchange", "Vtn3Server", "VtnState", "serve"]
