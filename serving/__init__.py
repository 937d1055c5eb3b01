"""Serving pushed models with TensorFlow Serving's gRPC and REST APIs, on machines without it.

The lowest layer of the project: it imports nothing of the rest, so that
`python -m serving.model_server` starts with nothing but TensorFlow, the TF Serving API protos and
tornado loaded. InfraValidator runs it (gRPC only) for a candidate model; `run_local.py serve`
runs it (gRPC and REST) for the pushed models.

- `repository`: the versions under a model base path, loaded and unloaded as TF Serving does,
  re-scanned while serving.
- `grpc_services`: TF Serving's ModelService and PredictionService over a repository.
- `tf_examples`: JSON feature values, typed by the model's schema, into serialized tf.Examples.
- `rest_api`: TF Serving's REST API (tornado), in front of the gRPC services or of a real
  `tensorflow_model_server`.
- `model_server`: the entry point, with TF Serving's flags.
"""
