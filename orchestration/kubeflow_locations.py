"""Where a Kubeflow run's tasks read and write: the image, and PipelineConfig's `*_uri` settings.

Kept apart from `kubeflow.py` (which imports TFX's compiler) so that the command line can build
the one PipelineConfig before the run's log file takes TensorFlow's start-up output.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from pipeline.config import PROJECT_ROOT

DEFAULT_IMAGE = "tfx-reference-pipeline:latest"
# Where the Dockerfile puts this project (code, schema/, data/) inside the image.
DEFAULT_IMAGE_PROJECT_DIR = "/pipeline"


def image_path(local: Path, project: str, pipeline_name: str) -> str:
    """Where the image holds the local file or folder `local`: at the same place under the
    project when it is in the project (the Dockerfile copies the project), else under
    profiles/<pipeline_name>/ (copy it there when you build the image, or give --data-uri)."""
    try:
        return f"{project}/{local.resolve().relative_to(PROJECT_ROOT).as_posix()}"
    except ValueError:
        return f"{project}/profiles/{pipeline_name}/{local.name}"


def task_locations(
    output_dir: Path,
    pipeline_name: str,
    data_dir: Path,
    curated_schema_file: Path,
    image_project_dir: str = DEFAULT_IMAGE_PROJECT_DIR,
    pipeline_root: str | None = None,
    data_uri: str | None = None,
    serving_model_uri: str | None = None,
) -> dict[str, str]:
    """Where the tasks read and write, as PipelineConfig's `*_uri` settings.

    Defaults: the data and curated schema baked into the image, a pipeline root under the local
    output directory (fine for compiling; a cluster needs an object store it reaches), and pushed
    models under the pipeline root.
    """
    project = image_project_dir.rstrip("/")
    root = pipeline_root or str(output_dir / "kubeflow" / "pipeline_root")
    return {
        "data_uri": data_uri or image_path(data_dir, project, pipeline_name),
        "pipeline_root_uri": root,
        "serving_model_uri": serving_model_uri
        or posixpath.join(root.rstrip("/"), "serving_model", pipeline_name),
        "curated_schema_uri": image_path(curated_schema_file, project, pipeline_name),
    }
