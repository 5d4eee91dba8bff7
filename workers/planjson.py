"""The poll's plan as JSON task arguments (observed values, no secrets) and back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from presence import StarfacePlan
from presence.categories import Category
from presence.policy import DndAction


def plan_to_json(plan: StarfacePlan) -> dict[str, Any]:
    return {
        "category": plan.category.value,
        "dnd": plan.dnd.value,
        "chat_text": plan.chat_text,
        "telephony_active": plan.telephony_active,
        "sequence_number": plan.sequence_number,
        "observed_at": None if plan.observed_at is None else plan.observed_at.isoformat(),
    }


def plan_from_json(data: dict[str, Any]) -> StarfacePlan:
    observed = data.get("observed_at")
    return StarfacePlan(
        category=Category(data["category"]),
        dnd=DndAction(data["dnd"]),
        chat_text=data.get("chat_text"),
        telephony_active=data.get("telephony_active"),
        sequence_number=data.get("sequence_number"),
        observed_at=None if observed is None else datetime.fromisoformat(observed),
    )
