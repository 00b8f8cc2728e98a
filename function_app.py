"""The Azure Functions entry point: wiring only.

Blueprints from ``functions/`` are registered here; they arrive with the serverless-app work
(policies, schedules, orchestrations). Until then the app registers nothing.
"""

import azure.durable_functions as df

app = df.DFApp()
