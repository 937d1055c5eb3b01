"""TFX components and the user code they run.

Importing this package has no side effect. A process that imports TFX defers TFX's Google Cloud
extensions itself, before TFX loads (components/tfx_private.py `defer_cloud_extensions`; called by
run_local.py, the node server's orchestration/node_server_preload.py and each Kubeflow task's
orchestration/kfp_task.py).
"""
