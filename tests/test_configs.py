"""The accelerate configs under configs/accelerate load with accelerate's own reader and say how to use them."""

from pathlib import Path

import pytest

CONFIGS = sorted((Path(__file__).parent.parent / "configs" / "accelerate").glob("*.yaml"))


def test_every_setup_the_readme_promises_is_there():
    assert {p.stem for p in CONFIGS} == {"one_gpu", "multi_gpu", "zero2", "zero3", "multi_node"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_names_its_command(path):
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(path))
    assert cfg.num_processes >= cfg.num_machines >= 1 and cfg.mixed_precision == "bf16" and not cfg.use_cpu
    if cfg.distributed_type == "DEEPSPEED":
        assert cfg.deepspeed_config["zero_stage"] in (2, 3)
    assert f"accelerate launch --config_file configs/accelerate/{path.name}" in path.read_text()
    assert path.name in (Path(__file__).parent.parent / "README.md").read_text()
