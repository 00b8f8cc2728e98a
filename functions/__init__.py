"""The function app's blueprints: triggers, orchestrators and activities (wiring in function_app.py).

names           every orchestrator and activity name
triggers/       http_api (run a policy now, session status), schedules (the timer)
orchestrators/  policy_session (fan-out over VMs), vm_backup (snapshots, worker jobs, points, retention)
activities/     thin shims: message.from_dict -> shared.services -> to_dict()
"""
