"""A faithful STARFACE PBX simulator: REST (/rest), the bridge module (/xml-rpc), signed webhooks, /__sim/."""

from simulators.starface._pbx import active_directory_login_secret, internal_login_secret, uci_token
from simulators.starface.control import StarfaceSimControl
from simulators.starface.seed import load_seed, make_seed
from simulators.starface.simulator import StarfaceSimulator

__all__ = [
    "StarfaceSimControl",
    "StarfaceSimulator",
    "active_directory_login_secret",
    "internal_login_secret",
    "load_seed",
    "make_seed",
    "uci_token",
]
