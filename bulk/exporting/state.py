"""An export's progress, typed: what it has written and where each walk stands.

The exporter saves the whole `ExportState` right after each part file it writes, so a killed
export continues from its last part; `bulk status` reads it too. This module alone knows the
document's layout; the checkpoint stores it as one JSON value (migration `003_export_document`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bulk.checkpoint import Checkpoint
from bulk.exporting.walker import WalkState
from bulk.schema import OBJECT_SCHEMAS, ObjectSchema

PARTS_LAYOUT = 2
"""The part files' columns: 2 since children carry `customer_id` and customers their own key
(issue 9). A resumed export whose parts an older bulk wrote starts again: merging them would
drop every child, whose `customer_id` those parts lack."""


@dataclass
class ObjectProgress:
    """What the export has written of one object type."""

    rows: int = 0
    parts: int = 0
    walk: WalkState = field(default_factory=WalkState)
    """Where its list walk stands (contacts have none: they are walked customer by customer)."""

    @classmethod
    def from_json(cls, document: Mapping[str, Any] | None) -> ObjectProgress:
        document = document or {}
        return cls(
            int(document.get("rows", 0)),
            int(document.get("parts", 0)),
            WalkState.from_json(document.get("walk")),
        )


def _every_object() -> dict[str, ObjectProgress]:
    return {schema.object: ObjectProgress() for schema in OBJECT_SCHEMAS}


@dataclass
class ExportState:
    """The progress of one export, saved whole in its checkpoint."""

    file_format: str | None = None
    """The format the export was started in: a resumed run must use it too."""
    workspace: str | None = None
    organization_id: str | None = None
    objects: dict[str, ObjectProgress] = field(default_factory=_every_object)
    """Keyed by `ObjectSchema.object`; read them with `of`."""
    late_customers_done: bool = False
    """Customers created after the customer walk were fetched (see the exporter)."""
    contacts_walked: int = 0
    """Customers, in export order, whose contacts are in the parts written."""
    contacts_finished: bool = False
    warnings: list[str] = field(default_factory=list)
    finished: bool = False
    """Merged, with its manifest written."""
    parts_layout: int = PARTS_LAYOUT
    """The layout of the part files written (`PARTS_LAYOUT` when this bulk wrote them)."""

    def of(self, schema: ObjectSchema) -> ObjectProgress:
        return self.objects[schema.object]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ExportState:
        saved = document.get("objects") or {}
        return cls(
            file_format=document.get("file_format"),
            workspace=document.get("workspace"),
            organization_id=document.get("organization_id"),
            objects={
                schema.object: ObjectProgress.from_json(saved.get(schema.object))
                for schema in OBJECT_SCHEMAS
            },
            late_customers_done=bool(document.get("late_customers_done")),
            contacts_walked=int(document.get("contacts_walked", 0)),
            contacts_finished=bool(document.get("contacts_finished")),
            warnings=list(document.get("warnings", [])),
            finished=bool(document.get("finished")),
            parts_layout=int(document.get("parts_layout", 1)),
        )

    @classmethod
    def load(cls, checkpoint: Checkpoint) -> ExportState | None:
        """The saved progress, or None when no export has saved any."""
        document = checkpoint.export_document()
        return None if document is None else cls.from_json(document)

    def save(self, checkpoint: Checkpoint) -> None:
        checkpoint.save_export_document(self.to_json())
