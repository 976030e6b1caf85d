"""One exception tree: every exception class defined in ``gateway`` derives from GatewayError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import gateway
from gateway.core import errors
from gateway.core.errors import GatewayError


def _modules() -> list[str]:
    found = pkgutil.walk_packages(gateway.__path__, prefix=f"{gateway.__name__}.")
    return [gateway.__name__, *(info.name for info in found)]


def _defined_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            # Classes defined here, not imported (a re-export is checked where it is defined);
            # nested classes too (tls.client_context defines its own), found via their module.
            if issubclass(obj, BaseException) and obj.__module__ == name:
                found[f"{name}.{obj.__qualname__}"] = obj
    return list(found.values())


def test_every_exception_class_in_the_gateway_derives_from_gateway_error() -> None:
    classes = _defined_exceptions()
    assert len(classes) > 30, "the walk found too few exception classes: is it looking?"
    strays = sorted(
        f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, GatewayError)
    )
    assert strays == [], f"exception classes outside the GatewayError tree: {strays}"


def test_the_branches_sit_under_gateway_error_and_core_imports_only_the_standard_library() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), GatewayError), name
    source = inspect.getsource(errors)
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations"]


def test_existing_relations_hold_so_that_callers_still_catch_them() -> None:
    from gateway.core.site import ConfigError as SiteConfigError
    from gateway.north.openadr3 import client as oadr3
    from gateway.north.sep2 import client as sep2
    from gateway.north.sep2 import tls
    from gateway.north.sep2.xml import Sep2ParseError
    from gateway.store.api import StoreDataError, StoreKeyError

    assert sep2.TransportError is oadr3.TransportError is errors.TransportError
    for cls, builtin in [
        (SiteConfigError, ValueError),
        (Sep2ParseError, ValueError),
        (StoreDataError, ValueError),
        (StoreKeyError, LookupError),
        (tls.TlsIdentityError, OSError),
    ]:
        assert issubclass(cls, builtin), cls
    assert issubclass(SiteConfigError, errors.ConfigError)
    assert issubclass(Sep2ParseError, errors.ProtocolError)
    pinned = tls.TlsIdentityError("peer LFDI X is not the pinned Y")
    assert isinstance(pinned, errors.TransportError)
    assert pinned.retry_after_s is None
    assert str(pinned) == "peer LFDI X is not the pinned Y"
