"""TFMA's default extractors, with the batches trimmed to what the metrics and slices read before
TFMA splits them into one dict per example.

TFMA's UnbatchExtractor turns each batch of extracts into a Python dict per example, and every
later step (slicing, the metric combiners, Beam's encoding between stages) carries those dicts.
By default they hold everything the extractors made: the serialized example, every raw feature,
every output of the `transform_features` signature, the Arrow record batch. Our metrics read only
the labels, predictions and example weights, and the slices read their own columns; on the taxi
data (1M rows, 250k evaluated) the rest made the split the second-largest cost of the Evaluator.

`custom_extractors` is TFX's own hook for this (its Evaluator executor calls a function of that
name, found through the `custom_extractors` execution property): the list below is TFMA's
`default_extractors` with TFMA's own `extractor.Filter` inserted before the unbatching. The
metrics, slices and output files are TFMA's, unchanged (tests/test_evaluator_extracts.py
compares them with TFMA's defaults on the same model and rows).
"""

from __future__ import annotations

from typing import Any

# The execution property TFX's Evaluator executor reads, and the dotted path it imports.
CUSTOM_EXTRACTORS_PROPERTY = "custom_extractors"
CUSTOM_EXTRACTORS_PATH = f"{__name__}.custom_extractors"
FILTER_STAGE = "KeepLabelsPredictionsAndSliceColumns"


def slice_columns(eval_config) -> set[str]:
    """Every column a slicing spec (or cross-slicing spec) of `eval_config` reads."""
    specs = list(eval_config.slicing_specs)
    for cross in eval_config.cross_slicing_specs:
        specs.append(cross.baseline_spec)
        specs.extend(cross.slicing_specs)
    columns: set[str] = set()
    for spec in specs:
        columns.update(spec.feature_keys)
        columns.update(spec.feature_values.keys())
    return columns


def kept_keys(eval_config) -> dict[str, Any]:
    """The extracts kept for TFMA's metrics and slices, as TFMA's `include_filter` reads them:
    a key mapped to {} is kept whole; features and transformed features keep only the slice
    columns."""
    from tensorflow_model_analysis import constants

    columns = {column: {} for column in sorted(slice_columns(eval_config))}
    return {
        constants.LABELS_KEY: {},
        constants.PREDICTIONS_KEY: {},
        constants.EXAMPLE_WEIGHTS_KEY: {},
        constants.SLICE_KEY_TYPES_KEY: {},
        # A filter matching nothing keeps an empty dict, which TFMA's slicer reads as "no value".
        constants.FEATURES_KEY: columns,
        constants.TRANSFORMED_FEATURES_KEY: columns,
    }


def custom_extractors(eval_shared_model, eval_config, tensor_adapter_config):
    """TFMA's default extractors with the trimming step before the UnbatchExtractor."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.extractors import extractor, unbatch_extractor

    extractors = tfma.default_extractors(
        eval_shared_model=eval_shared_model,
        eval_config=eval_config,
        tensor_adapter_config=tensor_adapter_config,
    )
    names = [e.stage_name for e in extractors]
    if names.count(unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME) != 1:
        return extractors  # a shape this trimming was not written for: TFMA's own list
    at = names.index(unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME)
    trim = extractor.Extractor(
        stage_name=FILTER_STAGE, ptransform=extractor.Filter(include=kept_keys(eval_config))
    )
    return extractors[:at] + [trim] + extractors[at:]
