"""The CDS Hooks 2.0 response: cards and their parts, as typed models that enforce the spec.

Rules enforced at construction (a card that breaks one is a bug here, never sent):
summary shorter than 140 characters; indicator info, warning or critical; link type absolute or
smart, with appContext only on smart links; selectionBehavior whenever suggestions are given;
override reasons with a display. Optional fields are never null or empty: empty strings and lists
are refused and ``wire()`` leaves unset fields out.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SUMMARY_LIMIT = 139  # "<140 characters"

Text = Annotated[str, Field(min_length=1)]
Indicator = Literal["info", "warning", "critical"]


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        """The JSON object to send: unset optional fields left out, never null."""
        return self.model_dump(mode="json", exclude_none=True)


class Coding(WireModel):
    code: Text
    system: Text | None = None
    display: Text | None = None


class OverrideReason(Coding):
    """A reason a clinician may pick when overriding; the EHR shows its display."""

    display: Text


class Source(WireModel):
    label: Text
    url: Text | None = None
    icon: Text | None = None
    topic: Coding | None = None


class Link(WireModel):
    label: Text
    url: Text
    type: Literal["absolute", "smart"]
    appContext: Text | None = None

    @model_validator(mode="after")
    def _app_context_only_on_smart_links(self) -> Link:
        if self.appContext is not None and self.type != "smart":
            raise ValueError("appContext is only allowed on smart links")
        return self


class Action(WireModel):
    type: Literal["create", "update", "delete"]
    description: Text
    resource: dict[str, Any] | None = None
    resourceId: Annotated[list[Text], Field(min_length=1)] | None = None


class Suggestion(WireModel):
    label: Text
    uuid: Text | None = None
    isRecommended: bool | None = None
    actions: Annotated[list[Action], Field(min_length=1)] | None = None


class Card(WireModel):
    uuid: Text | None = None
    summary: Annotated[str, Field(min_length=1, max_length=SUMMARY_LIMIT)]
    detail: Text | None = None
    indicator: Indicator
    source: Source
    suggestions: Annotated[list[Suggestion], Field(min_length=1)] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: Annotated[list[OverrideReason], Field(min_length=1)] | None = None
    links: Annotated[list[Link], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _selection_with_suggestions(self) -> Card:
        if self.suggestions is not None and self.selectionBehavior is None:
            raise ValueError("selectionBehavior is required when suggestions are given")
        return self


class CardsResponse(WireModel):
    cards: list[Card]
