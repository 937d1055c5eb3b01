"""The DirectRunner mode follows the size of the data a run reads, unless overridden."""

from __future__ import annotations

from orchestration import beam_mode
from tests.conftest import taxi_config


def test_auto_picks_in_memory_for_small_data_and_multi_processing_for_large():
    threshold = beam_mode.MULTI_PROCESSING_FROM_BYTES
    assert beam_mode.resolve("auto", threshold - 1) == "in_memory"
    assert beam_mode.resolve("auto", threshold) == "multi_processing"
    assert beam_mode.resolve("in_memory", 10 * threshold) == "in_memory"
    assert "--direct_num_workers=1" in beam_mode.direct_runner_args("in_memory")
    assert "--direct_running_mode=multi_processing" in beam_mode.direct_runner_args(
        "multi_processing"
    )


def test_tfx_does_not_package_itself_for_the_direct_runner_only():
    local = beam_mode.local_beam_args("in_memory", ())
    assert any(arg.startswith("--sdk_container_image=") for arg in local)
    dataflow = beam_mode.local_beam_args("in_memory", ("--runner=DataflowRunner",))
    assert not any(arg.startswith("--sdk_container_image=") for arg in dataflow)
    assert dataflow[-1] == "--runner=DataflowRunner"
    own = beam_mode.local_beam_args("in_memory", ("--setup_file=./setup.py",))
    assert not any(arg.startswith("--sdk_container_image=") for arg in own)


def test_size_counts_only_the_spans_a_run_reads(tmp_path):
    for span, size in ((1, 100), (2, 200), (3, 400)):
        folder = tmp_path / f"span-{span}"
        folder.mkdir()
        (folder / "taxi.csv").write_bytes(b"x" * size)
    assert beam_mode.labeled_bytes_read(tmp_path, "span-{SPAN}/*.csv", training_spans=2) == 600
    assert beam_mode.labeled_bytes_read(tmp_path, "span-{SPAN}/*.csv", training_spans=3) == 700


def test_the_choice_describes_itself_and_carries_the_users_options(tmp_path):
    (tmp_path / "labeled" / "span-1").mkdir(parents=True)
    (tmp_path / "labeled" / "span-1" / "taxi.csv").write_bytes(b"x" * 2**20)
    choice = beam_mode.choose(
        taxi_config(data_dir=tmp_path, extra_beam_args=("--runner=FlinkRunner",))
    )
    assert (choice.requested, choice.mode, choice.labeled_bytes) == ("auto", "in_memory", 2**20)
    assert choice.describe() == "DirectRunner in_memory (auto, 1.0 MiB of labeled CSV to read)"
    assert choice.beam_args[-1] == "--runner=FlinkRunner"
    forced = beam_mode.choose(taxi_config(data_dir=tmp_path, beam_mode="multi_processing"))
    assert forced.describe().startswith("DirectRunner multi_processing (1.0 MiB")


def test_the_batch_to_score_runs_in_memory_when_only_the_labeled_data_is_large(tmp_path):
    big = beam_mode.MULTI_PROCESSING_FROM_BYTES
    for role, size in (("labeled", big), ("unlabeled", 2**20)):
        (tmp_path / role / "span-1").mkdir(parents=True)
        (tmp_path / role / "span-1" / "taxi.csv").write_bytes(b"x" * size)
    choice = beam_mode.choose(taxi_config(data_dir=tmp_path))
    assert choice.mode == "multi_processing"
    assert choice.unlabeled_beam_args == beam_mode.direct_runner_args("in_memory")
    assert choice.describe().endswith("; the batch to score in_memory")
    # Chosen by the user (a mode, or the DirectRunner's own options): the same for every component.
    assert (
        beam_mode.choose(
            taxi_config(data_dir=tmp_path, beam_mode="multi_processing")
        ).unlabeled_beam_args
        == ()
    )
    assert (
        beam_mode.choose(
            taxi_config(data_dir=tmp_path, extra_beam_args=("--direct_num_workers=4",))
        ).unlabeled_beam_args
        == ()
    )
    # A large batch to score keeps the labeled data's mode.
    (tmp_path / "unlabeled" / "span-1" / "taxi.csv").write_bytes(b"x" * big)
    assert beam_mode.choose(taxi_config(data_dir=tmp_path)).unlabeled_beam_args == ()
