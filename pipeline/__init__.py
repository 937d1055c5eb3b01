"""The pipeline: its settings (config.py) and definition (definition.py).

`components` is imported first, so that `tfx.v1` loads without its Google Cloud extensions
(components/tfx_private.py `defer_cloud_extensions`).
"""

import components  # noqa: F401
