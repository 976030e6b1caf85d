"""The simulator's URL layout (CSIP-AUS test style), in one place.

=================================  =============================================================
``/dcap``                          DeviceCapability
``/tm``                            Time (server time, see ``UtilityState.clock``)
``/edev``                          EndDeviceList (paged ``?s=&l=``); POST: in-band registration
``/edev/{e}``                      EndDevice; ``/reg`` its Registration
``/edev/{e}/fsa[/{f}[/derp]]``     FunctionSetAssignmentsList, one FSA, its DERProgramList
``/edev/{e}/der[/{d}]``            DERList, one DER
``/edev/{e}/der/{d}/{kind}``       ``dercap``, ``derg`` (settings), ``ders``, ``dera``: GET / PUT
``/edev/{e}/sub[/{s}]``            SubscriptionList (POST: 201 + Location), one (GET, DELETE)
``/edev/{e}/cp``                   csipaus:ConnectionPoint: GET (404 until set), PUT (201, 204)
``/derp/{p}``                      DERProgram; ``/derc`` its DERControlList, ``/derc/{c}`` one,
                                   ``/dderc`` its DefaultDERControl (404 when none)
``/rsps/{p}/rsp``                  Response POST: every DERControl's ``replyTo``
``/mup[/{m}]``                     MirrorUsagePointList (POST creates), POST readings to one
``/upt/{m}/mr[/{r}]``              where readings POSTed to ``/mup/{m}`` are (Location only:
                                   the simulator serves no UsagePoint)
=================================  =============================================================
"""

from __future__ import annotations

from typing import Final

DCAP: Final = "/dcap"
TM: Final = "/tm"
EDEV: Final = "/edev"
MUP: Final = "/mup"
DER_PARTS: Final = ("dercap", "derg", "ders", "dera")


def edev(e: int) -> str:
    return f"{EDEV}/{e}"


def reg(e: int) -> str:
    return f"{edev(e)}/reg"


def fsa_list(e: int) -> str:
    return f"{edev(e)}/fsa"


def fsa(e: int, f: int) -> str:
    return f"{fsa_list(e)}/{f}"


def derp_list(e: int, f: int) -> str:
    return f"{fsa(e, f)}/derp"


def der_list(e: int) -> str:
    return f"{edev(e)}/der"


def der(e: int, d: int) -> str:
    return f"{der_list(e)}/{d}"


def der_part(e: int, d: int, part: str) -> str:
    return f"{der(e, d)}/{part}"


def sub_list(e: int) -> str:
    return f"{edev(e)}/sub"


def sub(e: int, s: int) -> str:
    return f"{sub_list(e)}/{s}"


def lel(e: int) -> str:
    return f"{edev(e)}/lel"


def cp(e: int) -> str:
    return f"{edev(e)}/cp"


def derp(key: str) -> str:
    return f"/derp/{key}"


def derc_list(key: str) -> str:
    return f"{derp(key)}/derc"


def derc(key: str, c: int) -> str:
    return f"{derc_list(key)}/{c}"


def dderc(key: str) -> str:
    return f"{derp(key)}/dderc"


def response_list(program_number: int) -> str:
    return f"/rsps/{program_number}/rsp"


def mup(m: int) -> str:
    return f"{MUP}/{m}"


def meter_reading(m: int, r: int | None = None) -> str:
    """The MeterReading (list) of the UsagePoint mirrored at ``/mup/{m}`` (2030.5 §10.11.3 f, g)."""
    return f"/upt/{m}/mr" if r is None else f"/upt/{m}/mr/{r}"
