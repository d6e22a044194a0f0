"""The Celery queues of the app's tasks: training and embedding whole catalogues go to `gpu`
(a worker on a GPU machine), everything else to `default`. A worker started with
`-Q default,gpu` takes them all.

The host routes them in its settings (this module imports only `task_names`, which imports
nothing, so settings may import it):
`CELERY_TASK_DEFAULT_QUEUE = "default"` and `CELERY_TASK_ROUTES = TASK_ROUTES`.
"""

from recommendations import task_names

DEFAULT = "default"
GPU = "gpu"
TASK_ROUTES = {
    task_names.RETRAIN: {"queue": GPU},
    task_names.EMBED: {"queue": GPU},
}
