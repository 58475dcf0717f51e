"""The accelerate configs in recipes/accelerate_configs: parsed by accelerate's own config classes and launch path
(launchers stubbed, so no GPU and no deepspeed are needed), and the ZeRO-3 handling of the frozen LLM."""

import os
import re
import sys
import types
from pathlib import Path
from unittest import mock

import pytest
import torch
from accelerate.commands import launch
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.utils import DeepSpeedPlugin, DistributedType, FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env, prepare_simple_launcher_cmd_env
from transformers import LlamaConfig, LlamaForCausalLM

from trocr_lail.lail.llm import prepare_llm_for_deepspeed

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "recipes" / "accelerate_configs"
EXPECTED = {  # file -> (distributed type, processes, machines, zero stage)
    "single_gpu.yaml": (DistributedType.NO, 1, 1, None),
    "ddp.yaml": (DistributedType.MULTI_GPU, 8, 1, None),
    "deepspeed_zero2.yaml": (DistributedType.DEEPSPEED, 8, 1, 2),
    "deepspeed_zero3.yaml": (DistributedType.DEEPSPEED, 8, 1, 3),
    "fsdp.yaml": (DistributedType.FSDP, 8, 1, None),
    "multi_node.yaml": (DistributedType.MULTI_GPU, 16, 2, None),
}


def test_every_config_is_listed():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_parses_with_accelerates_classes(name):
    config = load_config_from_file(str(CONFIGS / name))
    assert isinstance(config, ClusterConfig)
    kind, processes, machines, stage = EXPECTED[name]
    assert (config.distributed_type, config.num_processes, config.num_machines) == (kind, processes, machines)
    assert config.mixed_precision == "bf16" and config.use_cpu is False
    if kind == DistributedType.DEEPSPEED:
        assert config.deepspeed_config["zero_stage"] == stage
        assert config.deepspeed_config["zero3_init_flag"] is (stage == 3)
    if machines > 1:
        assert config.main_process_ip and config.main_process_port


def launch_env(name: str) -> tuple[dict, object]:
    """Run ``accelerate launch --config_file <name> recipes/finetune.py`` with the launcher stubbed; return the
    environment the training processes would get, and the final launch arguments."""
    captured = {}

    def record(prepare):
        def launcher(args):
            env = prepare(args)
            captured["env"], captured["args"] = (env[1] if isinstance(env, tuple) else env), args
        return launcher

    args = launch.launch_command_parser().parse_args(
        ["--config_file", str(CONFIGS / name), "recipes/finetune.py", "--config", "recipes/quickstart/lail.yaml"])
    with mock.patch.object(launch, "deepspeed_launcher", record(prepare_deepspeed_cmd_env)), \
            mock.patch.object(launch, "multi_gpu_launcher", record(prepare_multi_gpu_env)), \
            mock.patch.object(launch, "simple_launcher", record(prepare_simple_launcher_cmd_env)):
        launch.launch_command(args)
    return captured["env"], captured["args"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_launch_path_builds_the_plugins(name):
    env, args = launch_env(name)
    kind, processes, machines, stage = EXPECTED[name]
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    assert (args.num_processes, args.num_machines) == (processes, machines)
    with mock.patch.dict(os.environ, env):
        if kind == DistributedType.DEEPSPEED:
            assert env["ACCELERATE_USE_DEEPSPEED"] == "true"
            plugin = DeepSpeedPlugin()
            assert plugin.zero_stage == stage
            assert plugin.deepspeed_config["zero_optimization"]["stage"] == stage
            assert plugin.zero3_init_flag is (stage == 3)
        elif kind == DistributedType.FSDP:
            assert env["ACCELERATE_USE_FSDP"] == "true"
            with mock.patch("accelerate.utils.dataclasses.is_cuda_available", return_value=True), \
                    mock.patch("torch.cuda.current_device", return_value=0):  # sync_module_states asks for a GPU
                plugin = FullyShardedDataParallelPlugin()
            assert plugin.sharding_strategy.name == "FULL_SHARD" and plugin.use_orig_params
            assert plugin.state_dict_type.name == "FULL_STATE_DICT"  # the export needs a full state dict
        else:
            assert "ACCELERATE_USE_DEEPSPEED" not in env and "ACCELERATE_USE_FSDP" not in env


def test_recipes_readme_has_a_launch_line_per_config():
    readme = (ROOT / "recipes" / "README.md").read_text()
    launched = set(re.findall(r"accelerate launch --config_file recipes/accelerate_configs/(\S+\.yaml)", readme))
    assert launched == set(EXPECTED)


def fake_deepspeed(calls: list):
    class Engine(torch.nn.Module):  # DeepSpeedEngine is an nn.Module wrapping ``module``
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, *args, **kwargs):
            return self.module(*args, **kwargs)

    def initialize(model, config):
        calls.append(config)
        return Engine(model), None, None, None

    return types.SimpleNamespace(initialize=initialize)


def accelerator_with(stage):
    config = {"zero_optimization": {"stage": stage}, "optimizer": {"type": "AdamW"}, "train_batch_size": 8}
    plugin = None if stage is None else types.SimpleNamespace(zero_stage=stage, deepspeed_config=config)
    return types.SimpleNamespace(state=types.SimpleNamespace(deepspeed_plugin=plugin))


def tiny_llm():
    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    return LlamaForCausalLM(config)


def test_zero3_wraps_the_llm_in_an_inference_engine():
    calls, llm, accelerator = [], tiny_llm(), accelerator_with(3)
    with mock.patch.dict(sys.modules, deepspeed=fake_deepspeed(calls)):
        engine = prepare_llm_for_deepspeed(llm, accelerator)
    assert engine is not llm and engine.module is llm
    assert not engine.training and not any(p.requires_grad for p in engine.parameters())
    (config,) = calls
    assert "optimizer" not in config and config["zero_optimization"]["stage"] == 3
    assert config["zero_optimization"]["stage3_param_persistence_threshold"] == 160
    assert config["zero_optimization"]["reduce_bucket_size"] == 256
    assert "optimizer" in accelerator.state.deepspeed_plugin.deepspeed_config  # the Trainer's config is untouched
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(engine(input_ids=ids).logits, llm(input_ids=ids).logits)


@pytest.mark.parametrize("stage", [None, 0, 1, 2])
def test_llm_is_left_alone_without_zero3(stage):
    calls, llm = [], tiny_llm()
    with mock.patch.dict(sys.modules, deepspeed=fake_deepspeed(calls)):
        assert prepare_llm_for_deepspeed(llm, accelerator_with(stage)) is llm
    assert calls == []
