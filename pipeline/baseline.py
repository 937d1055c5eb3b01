"""The Evaluator's baseline: the latest blessed model that is not the candidate itself.

TFX's LatestBlessedModelStrategy returns the latest blessed model. On a re-run with nothing
changed, the Trainer's output is the cached model the previous run blessed, so the Evaluator would
compare the model with itself and, its inputs having changed, re-execute (with BulkInferrer and
Pusher after it). Excluding the candidate keeps the comparison meaningful and the re-run cached;
after a real change the previous blessed model is the baseline, as before.

On an ML Metadata database shared by several machines, the latest blessed model may have been
written to another machine's disk. A model this run cannot read is never its baseline: the
latest blessed one it can read is.

Kubeflow's compiler accepts only TFX's stock strategies, so whether the baseline excludes the
candidate is the orchestrator's choice (`create_pipeline(..., exclude_candidate_from_baseline=)`).
"""

from __future__ import annotations

from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)
from tfx.dsl.io import fileio

from components import tfx_private

CANDIDATE_KEY = "candidate"
MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"


class LatestBlessedOtherModelStrategy(LatestBlessedModelStrategy):
    """Inputs: `model` and `model_blessing` (all of them) and `candidate` (the Trainer's output)."""

    def resolve_artifacts(self, store, input_dict):
        candidates = input_dict.get(CANDIDATE_KEY, [])
        candidate_ids = {a.id for a in candidates}
        models = [
            m
            for m in input_dict.get(MODEL_KEY, [])
            if m.id not in candidate_ids and fileio.exists(m.uri)
        ]
        blessings = input_dict.get(MODEL_BLESSING_KEY, [])
        result = {MODEL_KEY: [], MODEL_BLESSING_KEY: []}
        if models and blessings:
            result = tfx_private.latest_blessed_model(
                self,
                {MODEL_KEY: models, MODEL_BLESSING_KEY: blessings},
                MODEL_KEY,
                MODEL_BLESSING_KEY,
            )
        result[CANDIDATE_KEY] = candidates
        return result
