"""The node server's first import: it readies that process to import TFX.

The server process that node processes fork from (orchestration/node_process.py) is a fresh
Python process that only imports modules (`PRELOADED_MODULES`); this is the first of them, its
entry point. It does what run_local.py does before anything imports TFX: defer TFX's Google Cloud
extensions (components/tfx_private.py `defer_cloud_extensions`, about 5 s of import). Nothing
else imports this module.
"""

from components import tfx_private

tfx_private.defer_cloud_extensions()
