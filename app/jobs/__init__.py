"""Background jobs, the low layer: the queue every part of the app enqueues on (queue.py), job ids that carry
their broker (ownership.py), the retry backoff (backoff.py) and a one-process-per-data-directory lock
(singleton.py). The arq worker that runs the jobs is app.worker, at the top: it imports every domain's tasks."""
