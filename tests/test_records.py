"""Run records say which CPU and which torch kernels produced them (results differ across CPUs)."""

import builtins

import torch

from harness import records


def test_hardware_names_the_cpu_and_torch_kernels():
    hw = records.hardware()
    assert hw["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert hw["cpu"] == records.cpu_model()
    try:
        lines = open("/proc/cpuinfo", encoding="utf-8").read().splitlines()
    except OSError:
        return
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    if names:
        assert hw["cpu"] == names[0]


def test_cpu_model_without_proc_cpuinfo(monkeypatch):
    real_open = builtins.open

    def no_cpuinfo(path, *args, **kwargs):
        if str(path) == "/proc/cpuinfo":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_cpuinfo)
    monkeypatch.setattr(records.platform, "processor", lambda: "x86_64")
    assert records.cpu_model() == "x86_64"
    monkeypatch.setattr(records.platform, "processor", lambda: "")
    assert records.cpu_model() is None
