"""The worker: runs one job spec out of process (a container in Azure, a local process locally).

    python -m shared.worker --job FILE        # or the spec in BULWARK_JOB

Modules:

    main          the entry point: reads the spec, builds the adapters, runs the job, exit code
    adapters      secret resolvers (file; Key Vault), the repository opener, managed-disk sources
    table_status  the job-status record on Table storage (Azurite locally)
    launchers     starting workers: Container Instances, or local processes (LocalProcessLauncher)

The spec format is ``shared.services.job_spec``; the use case is ``shared.services.image_backup``.
"""
