"""A policy as a JSON document: read it (with every problem named by its path), write it, describe it.

Reading checks, in order: inline secrets anywhere in the document (reported by path and kind only,
never by value, and nothing else is read until they are gone), then every field (types, formats,
ranges, unknown fields), then the rules across fields. All problems of a stage are reported at once
in one :class:`~shared.core.errors.PolicyValidationError`.
"""

from __future__ import annotations

import json
from typing import Any

from shared.core.errors import FieldProblem, PolicyValidationError
from shared.policy.codec import decode, encode, schema_definitions
from shared.policy.formats import POLICY_ID
from shared.policy.inline_secret import find_inline_secrets
from shared.policy.model import Policy
from shared.policy.validation import check_policy

__all__ = [
    "SCHEMA_ID",
    "openapi_components",
    "policy_from_dict",
    "policy_from_json",
    "policy_json_schema",
    "policy_to_dict",
    "validate_policy",
]

SCHEMA_ID = "https://bulwark.dev/schemas/policy.json"


def policy_from_dict(document: object) -> Policy:
    """Read a policy from parsed JSON; raise PolicyValidationError naming every problem."""
    subject = _subject(document)
    secrets = find_inline_secrets(document)
    if secrets:
        raise PolicyValidationError(subject, secrets)
    policy, problems = decode(Policy, document, name="the policy")
    if policy is None:
        raise PolicyValidationError(subject, problems)
    problems = check_policy(policy)
    if problems:
        raise PolicyValidationError(subject, problems)
    return policy


def policy_from_json(text: str | bytes) -> Policy:
    """Read a policy from JSON text (an HTTP body, a file)."""
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise PolicyValidationError(
            "the policy", [FieldProblem("", f"is not valid JSON{where}", "send one JSON object")]
        ) from None
    return policy_from_dict(document)


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """The JSON document of a policy; :func:`policy_from_dict` reads it back to an equal policy."""
    document: dict[str, Any] = encode(policy)
    return document


def validate_policy(policy: Policy) -> None:
    """Check a policy built in code exactly as one read from JSON."""
    policy_from_dict(policy_to_dict(policy))


def policy_json_schema() -> dict[str, Any]:
    """A standalone JSON Schema (draft 2020-12) of the policy document.

    It states every field, type, bound and format; rules across fields (e.g. "image-level backup
    needs a schedule") are in the descriptions and enforced by :func:`policy_from_dict`.
    """
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Bulwark backup policy",
        "$ref": "#/$defs/Policy",
        "$defs": schema_definitions(Policy),
    }


def openapi_components() -> dict[str, dict[str, Any]]:
    """``components.schemas`` entries for an OpenAPI 3.1 description (``Policy`` and its parts)."""
    return schema_definitions(Policy, ref_prefix="#/components/schemas/")


def _subject(document: object) -> str:
    if isinstance(document, dict):
        policy_id = document.get("id")
        if isinstance(policy_id, str) and POLICY_ID.check(policy_id) is None:
            return f"policy '{policy_id}'"
    return "the policy"
