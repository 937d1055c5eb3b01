"""The command of every Kubeflow task: `python -m orchestration.kfp_task ARGS`, TFX's own KFP v2
container entry point with TFX's arguments, after deferring TFX's Google Cloud extensions.

TFX's entry point imports `tfx.v1` with its extensions, which no component here uses: 3 to 5 s
more at the start of each task that imports the components (Tuner and Trainer; measured
2026-12-06: 9.0-11.5 s to import the entry point and the model code, 6.3 s deferred). The compiler
writes this module as the tasks' command (orchestration/kubeflow.py `TASK_COMMAND`); the image
has the project installed (Dockerfile).
"""

import sys

from components import tfx_private

tfx_private.defer_cloud_extensions()

# The compiler puts this before TFX's arguments for a pipeline compiled with --no-deterministic;
# otherwise the task batches examples by byte size, as a local deterministic run does
# (tfx_private.batch_deterministically).
NOT_DETERMINISTIC_FLAG = "--no-deterministic"

if __name__ == "__main__":
    if NOT_DETERMINISTIC_FLAG in sys.argv:
        sys.argv.remove(NOT_DETERMINISTIC_FLAG)
    else:
        tfx_private.batch_deterministically()
    tfx_private.run_kubeflow_v2_executor()
