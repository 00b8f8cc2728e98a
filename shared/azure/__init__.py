"""Azure adapters: the only package of ``shared`` that imports the Azure management SDKs and azure-identity.

Layering (each module only uses those listed after it):

    clients      composition root: AzureSettings -> credential, write budget, SDK clients
    compute      AzureCompute: VM discovery, incremental snapshots, chains, SAS grants, disk/VM create
    sql          AzureSql: servers, databases, copy, export pre-flight and export, import, delete
    containers   AzureContainers: container groups for workers (launch, poll, logs, delete)
    pageblob     PageBlobReader and VhdBlobs: the page-blob data plane (SAS reads, page-range diffs)
    arm          translate_arm_error: SDK exceptions -> shared.core.errors, once for every adapter
    throttle     WriteBudget (token bucket of ARM writes), ArmThrottlePolicy, ArmRetryPolicy
    settings     AzureSettings (explicit; from_mapping() at the edges only)
    credential   StaticTokenCredential (the simulator), build_credential
    ports        the Protocols the rest of Bulwark programs against
    model        frozen dataclasses the ports return (VmInfo, DiskInfo, SnapshotInfo, SasUrl, ...)
    resource_id  ResourceId: parse and format ARM ids

Importing this package imports nothing from Azure; ``ports``, ``model`` and ``resource_id`` never do.
"""
