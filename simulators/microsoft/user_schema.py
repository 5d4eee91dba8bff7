"""The properties of the Graph v1.0 `user` type, as `$select` sees them.

Taken from the v1.0 user resource page (docs-contrib `api-reference/v1.0/resources/user.md`, Properties
table) and the List users page (`api-reference/v1.0/api/user-list.md`): every declared property may be
named in `$select`; eleven of them are "only supported when retrieving a single user", and Graph answers
a list request that selects one of them with 501 (graph-api.md section 5, S20). Names are matched
case-insensitively, like Graph does, and answered in their declared spelling.
"""

from __future__ import annotations

from typing import Any

DEFAULT_SELECT = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
# Properties returned only on $select (beyond the defaults above).
SELECT_ONLY = (
    "aboutMe",
    "accountEnabled",
    "ageGroup",
    "assignedLicenses",
    "assignedPlans",
    "authorizationInfo",
    "birthday",
    "city",
    "companyName",
    "consentProvidedForMinor",
    "country",
    "createdDateTime",
    "creationType",
    "customSecurityAttributes",
    "deletedDateTime",
    "department",
    "employeeHireDate",
    "employeeId",
    "employeeLeaveDateTime",
    "employeeOrgData",
    "employeeType",
    "externalUserState",
    "externalUserStateChangeDateTime",
    "faxNumber",
    "hireDate",
    "identities",
    "imAddresses",
    "interests",
    "isManagementRestricted",
    "isResourceAccount",
    "lastPasswordChangeDateTime",
    "legalAgeGroupClassification",
    "licenseAssignmentStates",
    "mailboxSettings",
    "mailNickname",
    "mySite",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesExtensionAttributes",
    "onPremisesImmutableId",
    "onPremisesLastSyncDateTime",
    "onPremisesProvisioningErrors",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSipInfo",
    "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName",
    "otherMails",
    "passwordPolicies",
    "passwordProfile",
    "pastProjects",
    "postalCode",
    "preferredDataLocation",
    "preferredName",
    "provisionedPlans",
    "proxyAddresses",
    "refreshTokensValidFromDateTime",
    "responsibilities",
    "schools",
    "securityIdentifier",
    "serviceProvisioningErrors",
    "showInAddressList",
    "signInActivity",
    "signInSessionsValidFromDateTime",
    "skills",
    "state",
    "streetAddress",
    "usageLocation",
    "userType",
)
USER_PROPERTIES = DEFAULT_SELECT + SELECT_ONLY
# "Certain properties cannot be returned within a user collection" (user-list.md).
SINGLE_USER_ONLY = frozenset(
    {
        "aboutMe",
        "birthday",
        "hireDate",
        "interests",
        "mySite",
        "pastProjects",
        "preferredName",
        "responsibilities",
        "schools",
        "skills",
        "mailboxSettings",
    }
)
_COLLECTIONS = frozenset(
    {
        "businessPhones",
        "assignedLicenses",
        "assignedPlans",
        "identities",
        "imAddresses",
        "interests",
        "licenseAssignmentStates",
        "onPremisesProvisioningErrors",
        "otherMails",
        "pastProjects",
        "provisionedPlans",
        "proxyAddresses",
        "responsibilities",
        "schools",
        "serviceProvisioningErrors",
        "skills",
    }
)
_DEFAULTS: dict[str, Any] = {"accountEnabled": True, "userType": "Member", "showInAddressList": None}
BY_LOWER = {p.lower(): p for p in USER_PROPERTIES}


def default_value(name: str) -> Any:
    """What a user the seed says nothing about holds in a property: [] for collections, else null."""
    if name in _COLLECTIONS:
        return []
    return _DEFAULTS.get(name)
