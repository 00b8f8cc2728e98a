"""The Azure Functions entry point: wiring only (blueprints from functions/)."""

import azure.durable_functions as df
import azure.functions as func

from functions.activities import jobs, maintenance, restore, sessions, sql, sql_restore, vm
from functions.orchestrators import policy_session, restore_vm, sql_backup, vm_backup
from functions.orchestrators import sql_restore as sql_restore_orchestrator
from functions.triggers import http_api, http_browse, http_reports, http_restore, schedules

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (
    http_api.bp,
    http_reports.bp,
    schedules.bp,
    policy_session.bp,
    vm_backup.bp,
    sql_backup.bp,
    vm.bp,
    jobs.bp,
    maintenance.bp,
    sql.bp,
    sessions.bp,
    http_restore.bp,
    restore_vm.bp,
    restore.bp,
    http_browse.bp,
    sql_restore_orchestrator.bp,
    sql_restore.bp,
):
    app.register_functions(blueprint)
