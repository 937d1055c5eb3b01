"""TFX's Pusher executor, made all-or-nothing on a local serving folder.

TFX's own copies the model file by file into `<serving folder>/<version>/` (saved_model.pb last).
A push stopped part way (a full disk, a folder made read-only, the process killed) leaves a
numbered folder with part of a model in it, where a model server, `models` and a release look
for versions. Here the same push goes to a hidden staging folder beside the versions
(`.push-*`, which nothing reading versions lists), and the finished version folder is renamed
into place, one atomic step on one filesystem; the staging folder is removed whatever happens.
Object-store destinations (gs://, s3://), where a rename is a copy, are pushed as TFX does.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

from tfx.components.pusher import executor as tfx_pusher
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

log = logging.getLogger(__name__)

STAGING_PREFIX = ".push-"
_DESTINATION = standard_component_specs.PUSH_DESTINATION_KEY
_PUSHED_MODEL = standard_component_specs.PUSHED_MODEL_KEY


class Executor(tfx_pusher.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[_DESTINATION], destination)
        base = destination.filesystem.base_directory
        if destination.WhichOneof("destination") != "filesystem" or "://" in base:
            super().Do(input_dict, output_dict, exec_properties)
            return
        try:
            os.makedirs(base, exist_ok=True)
            staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base)
        except OSError as e:  # named by the serving folder, not the staging folder's random name
            raise OSError(e.errno, e.strerror, base) from e
        try:
            destination.filesystem.base_directory = staging
            staged = {**exec_properties, _DESTINATION: proto_utils.proto_to_json(destination)}
            super().Do(input_dict, output_dict, staged)
            model_push = artifact_utils.get_single_instance(output_dict[_PUSHED_MODEL])
            if not model_push.get_int_custom_property(tfx_pusher._PUSHED_KEY):  # noqa: SLF001
                return  # not blessed: nothing to publish
            version = model_push.get_string_custom_property(
                tfx_pusher._PUSHED_VERSION_KEY  # noqa: SLF001
            )
            final = os.path.join(base, version)
            # A folder of that version is already live (two pushes in one second): TFX skips
            # the copy then too.
            if not os.path.exists(final):
                os.rename(os.path.join(staging, version), final)
                log.info("Model version %s published in %s", version, final)
            model_push.set_string_custom_property(
                tfx_pusher._PUSHED_DESTINATION_KEY,  # noqa: SLF001
                final,
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
