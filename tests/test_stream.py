"""The streaming synthetic dataset: deterministic by (seed, index), sharded across processes x workers without
overlap, and resumed mid-epoch exactly (same lines, same losses) from a Trainer checkpoint."""

import json
import shutil

import numpy as np
import pytest
import torch
from accelerate.data_loader import prepare_data_loader

from trocr_lail.configs import DataArguments
from trocr_lail.data.sources import load_split
from trocr_lail.data.stream import SyntheticLineStream
from trocr_lail.data.synthetic import LineSpec, generate
from trocr_lail.run import main

from conftest import TINY_ARGS


def same(a: dict, b: dict) -> bool:
    return a["text"] == b["text"] and np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))


def test_lines_are_a_pure_function_of_seed_and_index():
    stream, again = SyntheticLineStream(LineSpec(seed=1), 50), SyntheticLineStream(LineSpec(seed=1), 50)
    other = SyntheticLineStream(LineSpec(seed=2), 50)
    assert all(same(stream[i], again[i]) for i in (0, 7, 49))
    assert all(same(stream[i], stream[i]) for i in (3, 3))
    assert [stream[i]["text"] for i in range(10)] != [other[i]["text"] for i in range(10)]
    assert not np.array_equal(np.asarray(stream[0]["image"]), np.asarray(stream[1]["image"]))
    # Order of access does not matter (workers ask for any index): 5 after 9 equals 5 alone.
    stream[9]
    assert same(stream[5], again[5])
    with pytest.raises(IndexError):
        stream[50]


def test_cached_sets_are_the_first_lines_of_the_stream():
    # The fixed validation/test sets and the stream share one definition of line i.
    stream = SyntheticLineStream(LineSpec(split="test", seed=4), 3)
    for i, row in enumerate(generate("test", 3, seed=4)):
        assert row["text"] == stream[i]["text"]
        assert np.array_equal(np.asarray(row["image"].convert("L")), np.asarray(stream[i]["image"]))


def test_lines_resized_in_the_worker_collate_to_the_processors_pixel_values():
    from trocr_lail.data.collator import LineCollator
    from trocr_lail.models.tiny import build_tiny_processor

    processor = build_tiny_processor(64, 96)
    images, resized = SyntheticLineStream(LineSpec(seed=5), 4), SyntheticLineStream(LineSpec(seed=5), 4)
    resized.resize_for(processor.image_processor)
    assert "image" not in resized[0] and resized[0]["pixels_shape"] == [3, 64, 96]
    collator = LineCollator(processor, 96)
    expected, got = collator([images[i] for i in range(4)]), collator([resized[i] for i in range(4)])
    torch.testing.assert_close(got["pixel_values"], expected["pixel_values"], atol=1e-6, rtol=0)
    assert torch.equal(got["labels"], expected["labels"])


class WorkerTaggedStream(SyntheticLineStream):
    def __getitem__(self, index):
        info = torch.utils.data.get_worker_info()
        return {"index": index, "worker": info.id, "text": super().__getitem__(index)["text"]}


def test_two_processes_by_two_workers_read_disjoint_lines_covering_the_epoch():
    batch, total = 4, 64
    dataset = WorkerTaggedStream(LineSpec(seed=0), total)
    seen = {}
    for rank in range(2):
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=torch.utils.data.SequentialSampler(
            dataset), num_workers=2, collate_fn=list)
        # What accelerate does to the Trainer's dataloader in process `rank` of 2 (no DDP launch needed).
        shard = prepare_data_loader(loader, num_processes=2, process_index=rank, put_on_device=False)
        seen[rank] = list(shard)
    for rank, batches in seen.items():
        assert len(batches) == total // batch // 2
        for k, rows in enumerate(batches):
            assert len({row["worker"] for row in rows}) == 1  # a batch is made by one worker
            assert rows[0]["worker"] == k % 2  # and the workers take turns
            # Local batch k of process r is global batch 2k + r: the stream's order is independent of R and W.
            assert [row["index"] for row in rows] == list(range((2 * k + rank) * batch, (2 * k + rank + 1) * batch))
    indices = {rank: [row["index"] for rows in batches for row in rows] for rank, batches in seen.items()}
    assert not set(indices[0]) & set(indices[1])
    assert sorted(indices[0] + indices[1]) == list(range(total))


def test_recipe_fields_build_a_stream_for_training_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path))
    args = DataArguments(synthetic=True, synthetic_stream=True, synthetic_train_samples=1000,
                         synthetic_eval_samples=2, max_train_samples=300, synthetic_max_chars=40)
    train = load_split(args, "train")
    assert isinstance(train, SyntheticLineStream) and len(train) == 300
    assert all(len(train[i]["text"]) <= 40 for i in range(20))
    assert not isinstance(load_split(args, "test"), SyntheticLineStream)


RUN = TINY_ARGS + ["--synthetic", "true", "--synthetic_stream", "true", "--synthetic_train_samples", "400",
                   "--synthetic_eval_samples", "2", "--augment", "true", "--max_steps", "6",
                   "--per_device_train_batch_size", "4", "--save_strategy", "steps", "--save_steps", "3",
                   "--logging_steps", "1", "--learning_rate", "1e-3", "--seed", "3", "--validation_split", "null",
                   "--test_split", "null", "--export", "false", "--use_cpu", "true", "--report_to", "none",
                   "--dataloader_num_workers", "2", "--max_target_length", "96"]


def losses(output_dir) -> dict[int, float]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


@pytest.mark.slow
def test_mid_epoch_resume_continues_at_the_next_line_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    main(RUN + ["--output_dir", str(full)])
    # The crash: only the mid-epoch checkpoint of step 3 (of 100 steps per epoch) survives.
    shutil.copytree(full / "checkpoint-3", resumed / "checkpoint-3")
    assert json.loads((resumed / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == 3
    main(RUN + ["--output_dir", str(resumed)])
    expected, got = losses(full), losses(resumed)
    assert sorted(got) == list(range(1, 7))  # 1-3 from the checkpoint's history, 4-6 trained after resuming
    for step in (4, 5, 6):
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step
