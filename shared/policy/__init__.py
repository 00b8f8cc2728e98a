"""Backup policies: the model, its validation, schedules and retention.

Layering (each module only uses those listed after it):

    document      policy_from_dict / policy_to_dict / validate_policy / JSON Schema and OpenAPI
    validation    rules across fields (the 500-snapshot guard, SQL staging, regions ...)
    slots         policy_slots, slot_id: which sessions are due, and their stable instance ids
    retention     select_snapshots_to_delete, select_points_to_delete (pure, explained)
    model         Policy and its parts (frozen dataclasses; field names are the JSON names)
    scope         Scope and scope_includes
    schedule      Schedule and due_slots (time zones, DST)
    formats       the string formats of fields and their messages
    inline_secret refuses secrets pasted where references belong
    codec         dataclasses <-> JSON with field-level problems, and JSON Schema
    azure_ids     ARM id shapes, subscription GUIDs, region names

Storage (each behind the PolicyStore port of ``store``):

    store         PolicyStore, StoredPolicy, InMemoryPolicyStore
    table_store   AzureTablePolicyStore (azure-data-tables)
    azure_table   Table storage plumbing shared with the catalog: documents across properties,
                  SDK errors -> shared.core.errors

Importing this package imports no Azure SDK; only ``table_store`` and ``azure_table`` do.
"""
