"""Serving pushed models with TensorFlow Serving's gRPC and REST APIs, on machines without it.

The lowest layer of the project: it imports nothing of the rest, so that
`python -m serving.model_server` starts with nothing but TensorFlow, the TF Serving API protos,
tornado and orjson loaded. InfraValidator runs it (gRPC only) for a candidate model; `run_local.py serve`
runs it (gRPC and REST) for the pushed models.

- `repository`: the versions under a model base path, loaded (and warmed up) and unloaded as TF
  Serving does, re-scanned while serving.
- `warmup`: TF Serving's warm-up requests (assets.extra/tf_serving_warmup_requests), written by
  the Trainer's export and replayed before a version is AVAILABLE.
- `batching`: concurrent requests to one signature run as one call (TF Serving's batching).
- `inference`: the version and signature a request names, run through the batcher.
- `grpc_services`: TF Serving's ModelService and PredictionService (grpc.aio) over it.
- `tf_examples`: JSON feature values, typed by the model's schema, written as serialized
  tf.Examples.
- `wire_format`: protobuf's wire format, for what the server writes per request.
- `rest_api`: TF Serving's REST API (tornado), beside the gRPC services or in front of a real
  `tensorflow_model_server`.
- `model_server`: the entry point, with TF Serving's flags.
- `workers`: several model servers on one pair of ports, supervised (`serve --workers`).
"""
