"""openleadr's ``create_message`` with the private key parsed once (workaround 6).

Stock ``create_message`` receives the PEM bytes and parses them twice for every message it
signs (once to pick the algorithm, once inside signxml). Parsing an RSA-2048 key costs ~39 ms
with OpenSSL 3 (its consistency check), so every signed message costs ~80 ms of key loading for
a ~0.6 ms signature (``shared/domain/openadr.md`` §2.3-1). Here the key is loaded once and the
key object is handed to signxml; the rendering, preflight checks and ReplayProtect are
openleadr's own, so the bytes on the wire are what stock openleadr sends.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs here
from openleadr import utils
from openleadr.messaging import TEMPLATES, _create_replay_protect
from openleadr.preflight import preflight_message
from signxml import methods
from signxml.algorithms import SignatureMethod
from signxml.signer import XMLSigner

_OADR = "http://openadr.org/oadr-2.0b/2012/07"
_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"

MessageFactory = Callable[..., str]


def _algorithm(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ecdsa-sha256"
    if isinstance(key, dsa.DSAPrivateKey):
        return "dsa-sha256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa-sha256"
    raise ValueError(f"{type(key).__name__} keys cannot sign OpenADR messages (use ECDSA P-256)")


def create_message(message_type: str, *, cert: str, key: Any, **payload: Any) -> str:
    """One signed OpenADR message, as ``openleadr.messaging.create_message`` makes it."""
    payload = preflight_message(message_type, payload)
    signed_object = utils.flatten_xml(
        TEMPLATES.get_template(f"{message_type}.xml").render(**payload)
    )
    signer = XMLSigner(method=methods.detached, c14n_algorithm=_C14N)
    signer.namespaces["oadr"] = _OADR
    signer.sign_alg = SignatureMethod.from_fragment(_algorithm(key))  # type: ignore[no-untyped-call]
    signature_tree = signer.sign(
        etree.fromstring(signed_object),
        key=key,
        cert=cert,
        reference_uri="#oadrSignedObject",
        signature_properties=_create_replay_protect(),
    )
    signature = etree.tostring(signature_tree).decode("utf-8")
    text: str = TEMPLATES.get_template("oadrPayload.xml").render(
        template=message_type, signature=signature, signed_object=signed_object
    )
    return text


def message_factory(cert: Path, key: Path) -> MessageFactory:
    """``create_message`` bound to our certificate and the key, loaded once."""
    private_key = serialization.load_pem_private_key(key.read_bytes(), password=None)
    _algorithm(private_key)  # refuse an unusable key at start-up, not at the first message
    return partial(create_message, cert=cert.read_text(), key=private_key)
