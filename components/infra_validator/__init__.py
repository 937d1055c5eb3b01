"""InfraValidator that runs the model server as a local process (no Docker, no Kubernetes).

Kept free of imports: `python -m components.infra_validator.model_server` must start with
nothing but TensorFlow and the TF Serving API loaded.
"""
