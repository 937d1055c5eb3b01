# The pipeline image for Kubeflow Pipelines: every task's command
# (`python -m orchestration.kfp_task ...`, TFX's KFP v2 entry point) resolves here,
# and user code is importable by the dotted paths the compiled spec names (components.model.run_fn).
#
#   docker build -t REGISTRY/tfx-reference-pipeline:TAG .
#   docker push REGISTRY/tfx-reference-pipeline:TAG
#
# Base: TFX 1.16.0's own image (Python 3.10, TFX's dependencies); the locked tree is then
# installed on top, so the container runs exactly the versions tested here.
FROM gcr.io/tfx-oss-public/tfx:1.16.0

WORKDIR /pipeline
COPY requirements.lock ./
RUN python -m pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock

# Project code, curated schema and the default data (small; real data lives in object storage,
# passed with --data-uri at compile time).
COPY pyproject.toml README.md run_local.py ./
COPY serving/ serving/
COPY pipeline/ pipeline/
COPY components/ components/
COPY profiling/ profiling/
COPY orchestration/ orchestration/
COPY deployment/ deployment/
COPY monitoring/ monitoring/
COPY release/ release/
COPY metadata/ metadata/
COPY cli/ cli/
COPY schema/ schema/
COPY profiles/ profiles/
COPY data/ data/
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation -e . \
    && python -c "import orchestration.kfp_task, components.model, components.tuning, components.preprocessing, components.evaluator.executor, components.infra_validator.executor"

# The InfraValidator's model server binds 127.0.0.1 inside the task's pod; nothing is exposed.
ENTRYPOINT []
