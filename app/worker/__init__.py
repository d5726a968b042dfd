"""The arq worker: runs the jobs of app.jobs' queue. It imports every domain's `tasks.py` (registry.py), so it
sits at the top, below the entry points only: app.main starts it in the API process (Settings.jobs_in_process),
`forexrisk worker` (app.cli) runs it alone."""
