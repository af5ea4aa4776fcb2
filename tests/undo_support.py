"""The `bulk undo` tests' workspace: the samples imported into a workspace that already holds
customers of its own — two the import adopts and changes (their `metadata.external_id` is a
source row's, their fields differ), with one adopted contact, and two unrelated ones with
their own contacts and onboardings — then the checks that the undo put it back."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import Result
from helpers import SAMPLES, WORKSPACE, source_rows
from safe_runs_support import KEY, bulk, connection

from bulk.sandbox import Sandbox

ADOPTED_CUSTOMERS: dict[str, dict[str, Any]] = {
    # a given slug collides: the source row's slug is the existing customer's
    "063581": {
        "name": "Müller und Söhne (CRM)",
        "slug": "mueller-soehne",
        "status": "active",
        "plan": "legacy",
        "mrr": 4200,
        "domain": "old-mueller.example",
        "tags": ["crm", "key-account"],
        "metadata": {"external_id": "063581", "crm": "salesforce"},
    },
    # the derived slug collides: same name, no slug sent
    "00329": {
        "name": "Café Crème SARL",
        "status": "at_risk",
        "plan": "enterprise",
        "owner_id": "usr_someone_else",
        "metadata": {"external_id": "00329"},
    },
}
ADOPTED_CONTACT = {  # under 063581; the source has a contact with this email
    "name": "Mehmet F.",
    "email": "mehmet@mueller-soehne.de",
    "title": "Founder",
    "phone": "n/a",
    "labels": ["vip"],
}
UNRELATED = (
    {"name": "Initech Legacy", "plan": "gold", "metadata": {"external_id": "X-1"}},
    {"name": "Hooli Archive", "status": "churned"},
)
HAND_CHANGED = "024821"
"""A customer the import created that somebody changes by hand afterwards."""


def call(
    sandbox: Sandbox, method: str, path: str, body: Any = None, *, key: str = KEY
) -> tuple[int, Any]:
    """One real request to the sandbox (synchronous: the tests drive the CLI in-process)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        sandbox.base_url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def made(sandbox: Sandbox, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, created = call(sandbox, "POST", path, body)
    assert status == 201, created
    return dict(created)


@dataclass
class Seeded:
    """The workspace's own records before the import, as the API returned them."""

    adopted: dict[str, dict[str, Any]] = field(default_factory=dict)
    """By external_id."""
    adopted_contact: dict[str, Any] = field(default_factory=dict)
    unrelated: list[dict[str, Any]] = field(default_factory=list)
    """Customers, contacts and onboardings nobody imported."""

    @property
    def ids(self) -> set[str]:
        records = [*self.adopted.values(), self.adopted_contact, *self.unrelated]
        return {str(record["id"]) for record in records}


def seed_workspace(sandbox: Sandbox) -> Seeded:
    seeded = Seeded()
    for external_id, body in ADOPTED_CUSTOMERS.items():
        seeded.adopted[external_id] = made(sandbox, "/customers", body)
    mueller = seeded.adopted["063581"]["id"]
    seeded.adopted_contact = made(sandbox, f"/customers/{mueller}/contacts", ADOPTED_CONTACT)
    for number, body in enumerate(UNRELATED):
        customer = made(sandbox, "/customers", body)
        contact = made(
            sandbox,
            f"/customers/{customer['id']}/contacts",
            {"name": f"Person {number}", "email": f"p{number}@example.com", "is_primary": True},
        )
        onboarding = made(
            sandbox, "/onboardings", {"customer_id": customer["id"], "name": f"Setup {number}"}
        )
        seeded.unrelated += [customer, contact, onboarding]
    return seeded


def import_samples(sandbox: Sandbox, checkpoint: Path, key: str = KEY) -> Result:
    result = bulk(
        "import", str(SAMPLES), "--checkpoint", str(checkpoint), "--quiet",
        *connection(sandbox, key),
    )  # fmt: skip
    return result


def undo(sandbox: Sandbox, checkpoint: Path, *options: str, key: str = KEY) -> Result:
    return bulk("undo", str(checkpoint), "--quiet", *options, *connection(sandbox, key))


def change_by_hand(sandbox: Sandbox, external_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Somebody edits a record in Pivotal after the import (a millisecond later at least, so
    that its `updated_at` is newer than the import's write)."""
    time.sleep(0.005)
    customer = customer_with(sandbox, external_id)
    status, changed = call(sandbox, "PATCH", f"/customers/{customer['id']}", fields)
    assert status == 200, changed
    return dict(changed)


def customer_with(sandbox: Sandbox, external_id: str) -> dict[str, Any]:
    found = [
        c
        for c in sandbox.objects(WORKSPACE, "customer")
        if (c.get("metadata") or {}).get("external_id") == external_id
    ]
    assert len(found) == 1, found
    return found[0]


def live_ids(sandbox: Sandbox) -> dict[str, set[str]]:
    return {
        name: {str(o["id"]) for o in sandbox.objects(WORKSPACE, name)}
        for name in ("customer", "contact", "onboarding")
    }


def without_updated_at(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != "updated_at"}


def assert_put_back(sandbox: Sandbox, seeded: Seeded, *, kept: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Only the workspace's own records are live (and `kept`, records left as conflicts);
    adopted ones hold exactly their earlier values, field by field; unrelated ones are as
    they were, `updated_at` included."""
    live = live_ids(sandbox)
    assert set().union(*live.values()) == seeded.ids | kept
    by_id = {
        str(o["id"]): o
        for name in ("customer", "contact", "onboarding")
        for o in sandbox.objects(WORKSPACE, name)
    }
    for before in [*seeded.adopted.values(), seeded.adopted_contact]:
        now = by_id[str(before["id"])]
        for name, value in without_updated_at(before).items():
            assert now[name] == value, (before["id"], name, now[name], value)
    for before in seeded.unrelated:
        assert by_id[str(before["id"])] == before


def sample_keys() -> set[str]:
    return {str(row["external_id"]) for row in source_rows("customers")}


def assert_samples_imported(sandbox: Sandbox, seeded: Seeded, old_ids: set[str]) -> None:
    """Every sample row is live again: the adopted customers are the workspace's own again,
    every other record is new (no id of a deleted one)."""
    customers = sandbox.objects(WORKSPACE, "customer")
    keys = {(c.get("metadata") or {}).get("external_id"): c for c in customers}
    assert sample_keys() <= set(keys)
    for external_id, record in seeded.adopted.items():
        assert keys[external_id]["id"] == record["id"]
    assert len(sandbox.objects(WORKSPACE, "contact")) == len(source_rows("contacts")) + 2
    assert len(sandbox.objects(WORKSPACE, "onboarding")) == len(source_rows("onboardings")) + 2
    new = set().union(*live_ids(sandbox).values()) - seeded.ids
    assert not new & old_ids
