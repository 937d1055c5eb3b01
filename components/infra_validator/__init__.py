"""InfraValidator that runs the model server as a local process (no Docker, no Kubernetes).

The server is `tensorflow_model_server` when there is one, else the project's
`python -m serving.model_server` (serving/), which speaks the same gRPC API.
"""
