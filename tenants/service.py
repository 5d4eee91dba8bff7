"""The ONE way to create, change or delete a tenant: the CLI, the admin API, the demo, the benchmark and
the tests all come through here, so every tenant ever stored was validated by `tenants.schema`.

`create_tenant` stores a new definition; `update_tenant` merges a partial change into the stored tenant
and validates the whole result before touching the row, so a bad change leaves nothing half-written
(design.md, invariants); `delete_tenant` refuses while outputs of ours are still set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Integer, Text, any_, bindparam, cast, func, literal_column, or_, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.orm import Session, raiseload, selectinload

from connectors.starface import StarfaceGroup
from models import AppliedState, StatusRule, Tenant, TenantHealth
from models.crypto import SecretBox
from models.secrets import read_secrets, set_secrets
from presence import Rule, TenantPolicy
from presence.categories import Category
from presence.policy import DndAction, overlay_rules
from tenants.changes import KEEP_SECRET, changed_paths, deep_merge, given, nest, plain
from tenants.groups import GroupLister, rest_groups
from tenants.groups import resolve as resolve_group
from tenants.naming import slugify, unique_slug
from tenants.policy import RuleRow, policy_for
from tenants.schema import (
    DEFAULT_SYMBOL,
    KEEP_SYMBOL,
    OPTION_FIELDS,
    SECRET_FIELDS,
    RuleOverride,
    TenantConfig,
    TenantConfigError,
    parse_category,
    validate,
    validate_config,
)


class TenantInUse(ValueError):
    """Deleting would leave a DND, chat text or Teams session of ours set; `holding` counts them."""

    def __init__(self, name: str, holding: int, ref: str | None = None) -> None:
        self.holding = holding
        ref = ref or name
        super().__init__(
            f"tenant {name} still holds a DND, chat text or Teams session of ours for {holding} user "
            f"state(s); deleting now would leave them set. Disable it first (`teamsconnect tenant set {ref} "
            "enabled=false`): drift repair releases them within 5 minutes. Or delete anyway with --force."
        )


# --- finding ---------------------------------------------------------------------------------------------


def find_tenant(session: Session, name_or_id: str) -> Tenant | None:
    """A tenant by id (a number), slug or name (names compared regardless of case)."""
    key = " ".join(name_or_id.split())
    if key.isdigit():
        return session.get(Tenant, int(key))
    found = session.scalars(select(Tenant).where(or_(Tenant.slug == key, Tenant.name == key))).first()
    if found is not None:
        return found
    wanted = key.casefold()
    return next((t for t in session.scalars(select(Tenant)) if t.name.casefold() == wanted), None)


def load_tenant(session: Session, tenant_id: int, include_disabled: bool = False) -> Tenant | None:
    """The tenant with its rule table (two queries), or None if it is gone (or disabled, unless asked)."""
    tenant = session.scalars(
        select(Tenant).where(Tenant.id == tenant_id).options(selectinload(Tenant.rules))
    ).one_or_none()
    return tenant if tenant is not None and (tenant.enabled or include_disabled) else None


def load_tenant_policies(session: Session,
                         tenant_ids: Sequence[int]) -> dict[int, tuple[Tenant, TenantPolicy]]:
    """The enabled ones of these tenants, each with the engine's policy, in two queries whatever their
    number: the rule tables as plain rows. A packed poll of 26 small tenants loaded ~300 rule objects
    through the ORM every cycle, 11 % of its CPU; ``tenant.rules`` is not loaded and raises if used."""
    tenants = session.scalars(
        select(Tenant).where(Tenant.id.in_(list(tenant_ids)), Tenant.enabled.is_(True))
        .options(raiseload(Tenant.rules))
    ).all() if tenant_ids else []
    if not tenants:
        return {}
    rules: dict[int, list[RuleRow]] = {tenant.id: [] for tenant in tenants}
    for row in session.execute(
        select(StatusRule.tenant_id, StatusRule.category, StatusRule.dnd_action, StatusRule.chat_text,
               StatusRule.chat_symbol).where(StatusRule.tenant_id.in_(list(rules))).order_by(StatusRule.id)
    ):
        rules[row.tenant_id].append(row)
    return {tenant.id: (tenant, policy_for(tenant, rules[tenant.id])) for tenant in tenants}


#: The tenant's columns that the scheduler changes on every claim; everything else is configuration.
SCHEDULER_COLUMNS = frozenset({"next_poll_at", "updated_at"})


def _fingerprint_statement() -> Any:
    """md5 of every configuration column of the tenant row and of its rule rows (PostgreSQL's text of a
    row constructor is unambiguous: it quotes and tells NULL from an empty string). Built from the table,
    so a column added later is in the fingerprint without anyone remembering to add it."""
    columns = [column for column in Tenant.__table__.columns if column.name not in SCHEDULER_COLUMNS]
    rule_columns = [column for column in StatusRule.__table__.columns if column.name != "tenant_id"]
    rule_texts = func.array_agg(aggregate_order_by(cast(tuple_(*rule_columns), Text), StatusRule.id))
    rules = select(cast(rule_texts, Text)).where(StatusRule.tenant_id == Tenant.id).scalar_subquery()
    configuration = cast(tuple_(*columns), Text) + func.coalesce(rules, literal_column("''"))
    return (select(Tenant.id, func.md5(configuration))
            .where(Tenant.id == any_(bindparam("ids", type_=ARRAY(Integer))), Tenant.enabled.is_(True)))


_FINGERPRINTS = _fingerprint_statement()


def tenant_fingerprints(session: Session, tenant_ids: Sequence[int]) -> dict[int, str] | None:
    """Per enabled tenant of these: a fingerprint of its whole stored configuration (row and rule table,
    not the scheduler's columns), in one statement; it changes with every change a writer makes, whoever
    the writer is. None on SQLite (the embedded mode), which has no md5: there, load the tenants."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    if not tenant_ids:
        return {}
    return {tenant_id: fingerprint
            for tenant_id, fingerprint in session.execute(_FINGERPRINTS, {"ids": list(tenant_ids)})}


def _check_name_free(session: Session, name: str, own_id: int | None = None) -> None:
    """Names are unique per deployment regardless of case, as the module's instance names."""
    wanted = name.casefold()
    for other_id, other in session.execute(select(Tenant.id, Tenant.name)):
        if other.casefold() == wanted and other_id != own_id:
            raise TenantConfigError([("name", f"a tenant named {other!r} exists already; choose another "
                                              "name")])


def _slug_for(session: Session, config: TenantConfig, own_id: int | None = None) -> str:
    """The given slug (must be free), else one derived from the name and made unique."""
    rows = session.execute(select(Tenant.id, Tenant.slug))
    taken = {slug for tenant_id, slug in rows if tenant_id != own_id}
    if config.slug is not None:
        if config.slug in taken:
            raise TenantConfigError([("slug", f"another tenant has the slug {config.slug!r}; choose another "
                                              "or leave slug out to derive one from the name")])
        return config.slug
    return unique_slug(slugify(config.name), taken)


# --- storing ---------------------------------------------------------------------------------------------


def _apply(tenant: Tenant, config: TenantConfig) -> None:
    """Copies every non-secret value of `config` onto the row."""
    selection, ms, sf = config.selection, config.microsoft, config.starface
    tenant.name, tenant.description = config.name, config.description
    tenant.enabled, tenant.log_level = config.enabled, config.log_level
    for name in OPTION_FIELDS:
        value = getattr(config.options, name)
        setattr(tenant, name, getattr(value, "value", value))
    tenant.selection_mode = selection.mode.value
    tenant.login_ids = list(selection.login_ids)
    tenant.poll_interval_s = config.poll_interval_s
    tenant.ms_app, tenant.ms_directory_id = ms.app, ms.directory_id
    if ms.client_id is not None:  # a tenant moving to the provider app keeps its own app's id for later
        tenant.ms_client_id = ms.client_id
    tenant.ms_secret_expires_at = ms.secret_expires_at
    tenant.login_base_url, tenant.graph_base_url = ms.login_base_url, ms.graph_base_url
    tenant.starface_base_url, tenant.starface_login_id = sf.base_url, sf.login_id
    tenant.bridge_instance = sf.bridge.instance if sf.bridge else None


def _rule_rows(tenant: Tenant, overrides: Mapping[Category, RuleOverride]) -> None:
    """Makes the tenant's rule rows equal the defaults overlaid with `overrides`, one row per category."""
    table = overlay_rules({category: Rule(row.dnd, row.chat_text, row.symbol_for(category))
                           for category, row in overrides.items()})
    rows = {row.category: row for row in tenant.rules}
    for category, rule in table.items():
        row = rows.get(category.value)
        if row is None:
            row = StatusRule(category=category.value)
            tenant.rules.append(row)
        row.dnd_action, row.chat_text = rule.dnd.value, rule.chat_text
        row.chat_symbol = None if rule.chat_symbol is None else rule.chat_symbol.value


def _default_groups(config: TenantConfig, password: str) -> Sequence[StarfaceGroup]:
    """The PBX's groups over its REST API (the CLI's CA bundle setting applies, as for `tenant test`)."""
    from config import get_settings  # read only when a group name has to be looked up

    return rest_groups(verify=get_settings().ca_bundle or True)(config, password)


def _set_group(tenant: Tenant, config: TenantConfig, password: Callable[[], str],
               groups: GroupLister | None) -> None:
    """Resolves the selection's group (name or id) and stores its id and last known name."""
    before = (tenant.starface_group_id, tenant.starface_group_name)
    lister = groups or _default_groups
    other_pbx = tenant.starface_base_url is not None and tenant.starface_base_url != config.starface.base_url
    tenant.starface_group_id, tenant.starface_group_name = resolve_group(
        config, lambda: lister(config, password()), before, other_pbx=other_pbx)


def create_tenant(session: Session, box: SecretBox, config: TenantConfig | Mapping[str, Any],
                  groups: GroupLister | None = None) -> Tenant:
    """Stores a new tenant: row, encrypted secrets, a rule row per category and an empty health row.

    ``config`` may be a validated `TenantConfig` or the plain definition (validated here). A group given by
    name is looked up on the PBX with ``groups`` (default: the PBX's REST API).
    """
    if not isinstance(config, TenantConfig):
        config = validate_config(config)
    _check_name_free(session, config.name)
    tenant = Tenant()
    _apply(tenant, config)
    _set_group(tenant, config, lambda: config.starface.password.get_secret_value(), groups)
    tenant.slug = _slug_for(session, config)
    bridge = config.starface.bridge
    client_secret = config.microsoft.client_secret
    set_secrets(
        tenant,
        box,
        ms_client_secret=client_secret.get_secret_value() if client_secret else None,
        starface_password=config.starface.password.get_secret_value(),
        bridge_secret=bridge.secret.get_secret_value() if bridge else None,
    )
    _rule_rows(tenant, config.rules)
    tenant.health = TenantHealth()
    session.add(tenant)
    session.flush()
    return tenant


def stored_config(tenant: Tenant, secret: Callable[[str | None], str]) -> dict[str, Any]:
    """The stored tenant in the config shape; `secret` says what to show for each encrypted secret."""
    bridge = None
    if tenant.bridge_instance:
        bridge = {"instance": tenant.bridge_instance, "secret": secret(tenant.bridge_secret_encrypted)}
    return {
        "name": tenant.name,
        "slug": tenant.slug,
        "description": tenant.description,
        "enabled": tenant.enabled,
        "log_level": tenant.log_level,
        "options": {name: getattr(tenant, name) for name in OPTION_FIELDS},
        "selection": {
            "mode": tenant.selection_mode,
            "starface_group": tenant.starface_group_name or (
                None if tenant.starface_group_id is None else str(tenant.starface_group_id)),
            "starface_group_id": tenant.starface_group_id,
            "login_ids": list(tenant.login_ids or []),
        },
        "poll_interval_s": tenant.poll_interval_s,
        "microsoft": {
            "app": tenant.ms_app,
            "directory_id": tenant.ms_directory_id,
            "client_id": tenant.ms_client_id,
            "client_secret": secret(tenant.ms_client_secret_encrypted),
            "secret_expires_at": tenant.ms_secret_expires_at,
            "login_base_url": tenant.login_base_url,
            "graph_base_url": tenant.graph_base_url,
        },
        "starface": {
            "base_url": tenant.starface_base_url,
            "login_id": tenant.starface_login_id,
            "password": secret(tenant.starface_password_encrypted),
            "bridge": bridge,
        },
        "rules": {row.category: {"dnd": row.dnd_action, "chat_text": row.chat_text,
                                 "chat_symbol": row.chat_symbol or KEEP_SYMBOL} for row in tenant.rules},
    }


def update_tenant(session: Session, box: SecretBox, tenant: Tenant, changes: Mapping[str, Any],
                  groups: GroupLister | None = None) -> list[str]:
    """Applies a partial change (nested or dotted keys); returns the names of the changed settings.

    The stored tenant and the change are merged and validated as a whole first, so an invalid change
    raises TenantConfigError and leaves the row untouched. Secrets not in `changes` keep their stored
    (encrypted) value without being decrypted. `starface.bridge: null` removes the bridge (REST-only).
    """
    nested = nest(changes)
    before = stored_config(tenant, lambda ciphertext: KEEP_SECRET if ciphertext else None)
    config = validate_config(deep_merge(before, nested))
    if config.name != tenant.name:
        _check_name_free(session, config.name, tenant.id)
    new_slug = _slug_for(session, config, tenant.id) if config.slug != tenant.slug else tenant.slug
    changed = set(changed_paths(plain(before), plain(config)))
    changed |= {path for path in SECRET_FIELDS if given(nested, path)}
    new_password = _new(config.starface.password.get_secret_value())
    _set_group(tenant, config, lambda: new_password or read_secrets(tenant, box).starface_password, groups)
    tenant.slug = new_slug  # after every check that can refuse the change
    if "selection.starface_group" in changed and tenant.starface_group_id != before["selection"][
            "starface_group_id"]:
        changed.add("selection.starface_group_id")
    _apply(tenant, config)
    bridge = config.starface.bridge
    bridge_secret = _new(bridge.secret.get_secret_value()) if bridge else None
    set_secrets(
        tenant,
        box,
        ms_client_secret=_new(config.microsoft.client_secret.get_secret_value())
        if config.microsoft.client_secret else None,
        starface_password=_new(config.starface.password.get_secret_value()),
        bridge_secret=bridge_secret,
        clear_bridge_secret=bridge is None,
    )
    _rule_rows(tenant, config.rules)
    session.flush()
    return sorted(changed)


#: Changed settings that change which users are synced or how they are matched by e-mail: a directory
#: sync should follow at once (issue 11), not within 15 minutes.
DIRECTORY_SETTINGS = ("selection.", "microsoft.directory_id", "microsoft.graph_base_url", "starface.base_url",
                      "enabled")


def needs_directory_sync(changed: list[str]) -> bool:
    """True when a change (names as `update_tenant` returns them) affects the user links."""
    return any(path.startswith(DIRECTORY_SETTINGS) for path in changed)


def _new(secret: str) -> str | None:
    """None (= keep the stored secret) for the stand-in, else the new secret."""
    return None if secret == KEEP_SECRET else secret


def set_rule(
    session: Session, tenant: Tenant, category: Category | str, dnd: DndAction | str, chat_text: str | None,
    chat_symbol: str | None = None,
) -> StatusRule:
    """Sets one row of the tenant's rule table (validated like the config's `rules`); `chat_symbol` None
    keeps the row's symbol, "keep" leaves the user's."""
    cat = category if isinstance(category, Category) else parse_category(category)
    row = next((r for r in tenant.rules if r.category == cat.value), None)
    if chat_symbol is None:
        chat_symbol = (row.chat_symbol or KEEP_SYMBOL) if row is not None else DEFAULT_SYMBOL
    rule = validate(RuleOverride, {"dnd": dnd, "chat_text": chat_text, "chat_symbol": chat_symbol},
                    f"rules.{cat.value}")
    if row is None:  # a tenant stored before this category existed
        row = StatusRule(category=cat.value)
        tenant.rules.append(row)
    row.dnd_action, row.chat_text = rule.dnd.value, rule.chat_text
    symbol = rule.symbol_for(cat)
    row.chat_symbol = None if symbol is None else symbol.value
    session.flush()
    return row


def holding_count(session: Session, tenant: Tenant) -> int:
    """How many of the tenant's applied states still own a DND, chat text or Teams session of ours."""
    return sum(1 for owned in session.scalars(
        select(AppliedState.owned).where(AppliedState.tenant_id == tenant.id)) if owned)


def delete_tenant(session: Session, tenant: Tenant, force: bool = False) -> None:
    """Deletes the tenant with its links, states, audit trail and health; refuses (TenantInUse) while our
    outputs are still set, unless ``force``."""
    holding = holding_count(session, tenant)
    if holding and not force:
        raise TenantInUse(tenant.name, holding, tenant.slug)
    session.delete(tenant)
    session.flush()
