"""The catalog: backup sessions (with per-resource results) and restore points, in Table storage.

    model   Session, ResourceResult, RestorePoint, Status, TriggerKind, PointKind, overall_status
    port    the Catalog Protocol; latest_image_points, protected_snapshot_ids
    memory  InMemoryCatalog (unit tests of code that records sessions)
    table   AzureTableCatalog (azure-data-tables): the keys and why they are shaped so

Importing this package imports no Azure SDK; only ``table`` does.
"""
