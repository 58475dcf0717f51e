"""Issue 13, disks: auto-resume passes over a damaged newest checkpoint (saying which and why), and a save that runs
out of space says so plainly and keeps the last complete checkpoint. Full disks are simulated (ENOSPC, or torch's
errno-less "unexpected pos" with the free space reported low), never produced."""

import errno
import logging
import shutil

import pytest
import torch

from trocr_lail.data.collator import LineCollator
from trocr_lail.training import checkpoints
from trocr_lail.training.checkpoints import checkpoint_problem, last_complete_checkpoint, resolve_resume
from trocr_lail.training.trainer import LineRecognitionTrainer

from conftest import make_tiny_model
from test_lail import dataset, training_args


def train(output_dir, processor, max_steps=4, resume=None, **overrides):
    trainer = LineRecognitionTrainer(
        model=make_tiny_model(processor, dropout=0.0), train_dataset=dataset(),
        data_collator=LineCollator(processor, 32),
        args=training_args(output_dir, save_strategy="steps", save_steps=2, max_steps=max_steps, **overrides))
    trainer.train(resume_from_checkpoint=resume)
    return trainer


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    from trocr_lail.models.tiny import build_tiny_processor

    out = tmp_path_factory.mktemp("run")
    train(out, build_tiny_processor(16, 64))
    return out


def copy_run(source, target):
    shutil.copytree(source, target)
    return target


def test_complete_checkpoints_pass_the_check(two_checkpoints):
    assert checkpoint_problem(two_checkpoints / "checkpoint-2") is None
    assert last_complete_checkpoint(two_checkpoints) == two_checkpoints / "checkpoint-4"


@pytest.mark.parametrize("damage, why", [
    ("truncate_weights", r"model\.safetensors is truncated \(\d+ of \d+ bytes\)"),
    ("truncate_header", r"model\.safetensors is truncated \(its header alone needs"),
    ("truncate_optimizer", r"optimizer\.pt is truncated or corrupt"),
    ("bad_state", r"trainer_state\.json is not valid JSON"),
    ("no_state", r"no trainer_state\.json \(the save was interrupted\)"),
    ("no_weights", r"no weights"),
])
def test_auto_resume_falls_back_to_the_previous_complete_checkpoint(two_checkpoints, tmp_path, caplog, damage, why):
    run = copy_run(two_checkpoints, tmp_path / "run")
    newest = run / "checkpoint-4"
    weights, optimizer = newest / "model.safetensors", newest / "optimizer.pt"
    if damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "truncate_header":
        weights.write_bytes(weights.read_bytes()[:50])
    elif damage == "truncate_optimizer":
        optimizer.write_bytes(optimizer.read_bytes()[:1000])
    elif damage == "bad_state":
        (newest / "trainer_state.json").write_text('{"global_step": 4,')
    elif damage == "no_state":
        (newest / "trainer_state.json").unlink()
    else:
        weights.unlink()
    with caplog.at_level(logging.WARNING, logger="trocr_lail"):
        assert resolve_resume(None, run) == str(run / "checkpoint-2")
    message = caplog.text
    assert f"Not resuming from {newest}: " in message and f"falling back to {run / 'checkpoint-2'}" in message
    assert __import__("re").search(why, message)
    # A checkpoint named explicitly is never swapped for another: a clear error instead.
    with pytest.raises(ValueError, match=f"resume_from_checkpoint: {newest} cannot be resumed from: {why}"):
        resolve_resume(str(newest), run)


def test_resuming_after_the_fallback_trains_on(two_checkpoints, tmp_path, tiny_processor, monkeypatch):
    run = copy_run(two_checkpoints, tmp_path / "run")
    weights = run / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # what a crash during the write leaves
    loaded = []
    original = LineRecognitionTrainer._load_from_checkpoint
    monkeypatch.setattr(LineRecognitionTrainer, "_load_from_checkpoint",
                        lambda self, path, model=None: loaded.append(path) or original(self, path, model))
    trainer = train(run, tiny_processor, max_steps=6, resume=resolve_resume(None, run))
    assert loaded == [str(run / "checkpoint-2")] and trainer.state.global_step == 6
    assert checkpoint_problem(run / "checkpoint-4") is None  # step 4 saved again, complete this time


def test_no_complete_checkpoint_left_warns_and_starts_fresh(two_checkpoints, tmp_path, caplog):
    run = copy_run(two_checkpoints, tmp_path / "run")
    for step in (2, 4):
        (run / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="trocr_lail"):
        assert resolve_resume(None, run) is None
    assert "no earlier complete checkpoint" in caplog.text
    with pytest.raises(FileNotFoundError, match="holds no complete checkpoint"):
        resolve_resume("auto", run)


@pytest.mark.parametrize("failure", ["enospc", "unexpected_pos"])
def test_a_save_that_runs_out_of_space_keeps_the_last_checkpoint(tmp_path, tiny_processor, monkeypatch, failure):
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if "checkpoint-4" in str(f):
            if failure == "enospc":
                raise OSError(errno.ENOSPC, "No space left on device")
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 2303360 vs 2303248")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    if failure == "unexpected_pos":  # torch loses the errno: the guard looks at the free space instead
        usage = shutil.disk_usage(tmp_path)
        monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda _: usage._replace(free=10 * 2**20))
    out = tmp_path / "run"
    with pytest.raises(OSError, match=r"No space left on the disk of .*run while saving checkpoint-4; the last "
                                      r"complete checkpoint, .*checkpoint-2, is intact\. Free space") as caught:
        train(out, tiny_processor, save_total_limit=1)  # rotation must not delete checkpoint-2 either
    assert caught.value.errno == errno.ENOSPC
    assert not (out / "checkpoint-4").exists()  # the partial save is removed: it only held the space
    assert checkpoint_problem(out / "checkpoint-2") is None
    assert resolve_resume(None, out) == str(out / "checkpoint-2")


def test_other_save_errors_are_not_called_a_full_disk(tmp_path, tiny_processor, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("some other failure")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError, match="some other failure"):
        train(tmp_path / "run", tiny_processor)
