"""The wizard's live checks of credentials that are not stored yet (Microsoft sign-in, STARFACE admin
login), with the connectors' messages, which name the AADSTS code and its fix.

The dry run of a stored tenant (what its first cycle would write) is a use case of the sync, which owns
the limits its reads must keep: sync/dry_run.py.
"""

from __future__ import annotations

from connectors.graph import GraphClient, GraphError
from connectors.starface import StarfaceError, StarfaceRestClient
from tenants.diagnostics import CheckResult, hide_secrets


def check_microsoft(directory_id: str, client_id: str, client_secret: str, login_base_url: str,
                    graph_base_url: str, verify: str | bool, timeout: float) -> CheckResult:
    graph = GraphClient(directory_id, client_id, client_secret, login_base_url=login_base_url,
                        graph_base_url=graph_base_url, verify=verify, timeout=timeout)
    try:
        roles = graph.check_access()
        return CheckResult("Microsoft sign-in and user read", "OK",
                           "token issued; app roles: " + (", ".join(roles) or "(none)"))
    except (GraphError, OSError, ValueError) as exc:
        return CheckResult("Microsoft sign-in and user read", "FAILED",
                           hide_secrets(str(exc), [client_secret]))
    finally:
        graph.close()


def check_starface(base_url: str, login_id: str, password: str, verify: str | bool,
                   timeout: float) -> CheckResult:
    try:
        with StarfaceRestClient(base_url, login_id, password, verify=verify, timeout=timeout) as rest:
            seen = rest.check_access()
        return CheckResult("STARFACE REST login and admin rights", "OK",
                           f"logged in as {seen.login} with admin rights; sees {seen.user_count} users and "
                           f"{seen.group_count} groups")
    except (StarfaceError, OSError, ValueError) as exc:
        return CheckResult("STARFACE REST login and admin rights", "FAILED",
                           hide_secrets(str(exc), [password]))
