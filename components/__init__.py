"""TFX components and the user code they run.

Importing this package first defers TFX's Google Cloud extensions, about 5 s of import that no
component here uses (components/tfx_private.py `defer_cloud_extensions`).
"""

from components import tfx_private

tfx_private.defer_cloud_extensions()
