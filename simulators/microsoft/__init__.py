"""Microsoft simulator: Entra ID login (client credentials) and Microsoft Graph presence/users/groups,
served over HTTPS, strict like the real service (reference: /work/shared/reference/graph-api.md).

In-process use::

    with MicrosoftSimulator(make_seed(n_users=100)) as sim:
        control = MicrosoftSimControl(sim.base_url, verify=sim.ca_path)

Standalone: `teamsconnect sim microsoft --seed FILE --port P --tls-dir D`.
"""

from simulators.microsoft.client import MicrosoftSimControl
from simulators.microsoft.seed import make_seed, make_tenant, stable_id
from simulators.microsoft.server import MicrosoftSimulator

__all__ = ["MicrosoftSimControl", "MicrosoftSimulator", "make_seed", "make_tenant", "stable_id"]
