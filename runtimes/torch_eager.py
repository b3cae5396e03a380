"""PyTorch eager mode: CPU and CUDA, fp32, fp16 (CUDA), bf16 (autocast, where the hardware computes bf16),
optional channels_last, under inference_mode."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtimes.base import (COMMON_SOURCES, CPU, CUDA, TORCH_MODULE, Artifact, DeviceClock, Inputs, OptionSpec, Runtime,
                           RuntimeOptions, TorchModuleArtifact, UnsupportedConfiguration, contiguous, input_arrays)

from runtimes.cpu_features import native_bf16

PRECISIONS = ("fp32", "fp16", "bf16")


class CudaEventClock:
    """CUDA events recorded on the current stream around one run."""

    source = "CUDA events on the current stream around run()"

    def __init__(self, torch: Any) -> None:
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def mark_start(self) -> None:
        self._start.record()

    def mark_end(self) -> None:
        self._end.record()

    def wait_end(self) -> None:
        self._end.synchronize()

    def elapsed_ms(self) -> float:
        return float(self._start.elapsed_time(self._end))


class TorchEagerRuntime(Runtime):
    name = "torch"
    consumes = TORCH_MODULE
    preload_modules = ("torch",)
    memory_sources = (*COMMON_SOURCES, "torch_allocator")
    own_memory_source = "torch_allocator"
    required_modules = ("torch",)
    install_hint = "runtime 'torch' needs PyTorch: pip install 'dnn-harness[torch]' (on a board, measure a bundle's " \
                   "ONNX files with --runtime ort or trt instead)"
    devices = (CPU, CUDA)
    packages = ("torch",)
    precisions = {"fp32": "", "fp16": "CUDA only", "bf16": "where the hardware computes it"}
    option_prefix = "torch"
    option_specs = {"cudnn_benchmark": OptionSpec("cuDNN autotuning of convolution kernels per shape (CUDA)",
                                                  ("on", "off"), "on")}

    @classmethod
    def classify_failure(cls, exc: BaseException) -> str | None:
        """torch.OutOfMemoryError (CUDA and newer CPU allocators); the CPU allocator's own failure."""
        if type(exc).__name__ == "OutOfMemoryError":
            return "oom"
        if isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(exc):
            return "oom"
        return None

    def init_device(self) -> None:
        """The CUDA context through torch: the runtime's own library makes it, as in a user's program."""
        if self.options.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise UnsupportedConfiguration("CUDA was asked for but torch sees no CUDA device")
            torch.zeros(1, device=self.options.device)
            torch.cuda.synchronize(self.options.device)

    def device_memory(self) -> dict[str, Any]:
        if not self.options.device.startswith("cuda"):
            return {"missing": "the cell runs on the CPU"}
        import torch

        device = self.options.device
        return {"peak_allocated_bytes": torch.cuda.max_memory_allocated(device),
                "peak_reserved_bytes": torch.cuda.max_memory_reserved(device),
                "source": "torch.cuda.max_memory_allocated / max_memory_reserved over the whole cell"}

    def __init__(self, options: RuntimeOptions) -> None:
        super().__init__(options)
        if not (options.device == "cpu" or options.device.startswith("cuda")):
            raise UnsupportedConfiguration(f"{self.name} runs on cpu or cuda, not {options.device}")
        if options.precision == "int8":
            raise UnsupportedConfiguration(f"int8 runs from the quantized (Q/DQ) ONNX file on ort, ov or trt; "
                                           f"{self.name} runs the float module")
        if options.precision not in PRECISIONS:
            raise UnsupportedConfiguration(f"{self.name} supports {', '.join(PRECISIONS)}, not {options.precision}")
        if options.precision == "fp16" and not options.device.startswith("cuda"):
            raise UnsupportedConfiguration(f"fp16 in {self.name} needs CUDA (CPU half kernels are slow or missing)")
        self._cpu_bf16 = native_bf16() if options.precision == "bf16" and options.device == "cpu" else None
        if options.precision == "bf16" and options.device == "cpu" and self._cpu_bf16 is None:
            raise UnsupportedConfiguration("bf16 needs a CPU that computes it in hardware (AVX-512 BF16, AMX or Arm "
                                           "BF16); this one would emulate it, slower than fp32")
        self._module: Any = None
        self._inputs: Any = None
        self._result: Any = None

    def load(self, artifact: Artifact) -> None:
        import torch

        if not isinstance(artifact, TorchModuleArtifact):
            raise UnsupportedConfiguration(f"{self.name} runs torch modules, not {type(artifact).__name__}")
        self._torch = torch
        if self.options.threads is not None:
            torch.set_num_threads(self.options.threads)
        self._device = torch.device(self.options.device)
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise UnsupportedConfiguration("CUDA was asked for but torch sees no CUDA device")
        if self._device.type == "cuda":
            torch.backends.cudnn.benchmark = self.options.extra.get("cudnn_benchmark", "on") == "on"
            if self.options.precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
                raise UnsupportedConfiguration(f"bf16 needs a GPU that computes it (Ampere or newer); "
                                               f"{torch.cuda.get_device_name(self._device)} does not")
        module = artifact.build().eval().to(self._device)
        if self.options.precision == "fp16":
            module = module.half()
        if self.options.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self._module = module

    def prepare(self, inputs: Inputs) -> None:
        """Each input a tensor on the device (floats at fp16 where the module is), in the forward's order."""
        torch = self._torch
        tensors = []
        for array in input_arrays(inputs):
            tensor = torch.from_numpy(contiguous(array)).to(self._device)
            if self.options.precision == "fp16" and tensor.is_floating_point():
                tensor = tensor.half()
            if self.options.channels_last and tensor.dim() == 4:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
            tensors.append(tensor)
        self._inputs = tensors

    def run(self) -> None:
        """The module's forward under inference_mode; at bf16 also under autocast (matmuls and convolutions in
        bf16, reductions in fp32). Other precisions enter no autocast context at all."""
        with self._torch.inference_mode():
            if self.options.precision != "bf16":
                self._result = self._module(*self._inputs)
                return
            with self._torch.autocast(self._device.type, dtype=self._torch.bfloat16):
                self._result = self._module(*self._inputs)

    def synchronize(self) -> None:
        if self._device.type == "cuda":
            self._torch.cuda.synchronize(self._device)

    def outputs(self) -> list[np.ndarray]:
        """Every output tensor, in the order the ONNX export lists them: a tuple or list in order, a dict's values
        in insertion order (a segmenter's {"out", "aux"})."""
        result = self._result
        if isinstance(result, dict):
            result = list(result.values())
        tensors = result if isinstance(result, (tuple, list)) else [result]
        return [t.detach().float().cpu().numpy() for t in tensors]

    def device_clock(self) -> DeviceClock | None:
        if self._device.type != "cuda":
            return None
        return CudaEventClock(self._torch)

    def info(self) -> dict[str, Any]:
        import torch

        cuda = self.options.device.startswith("cuda")
        return {
            "name": self.name,
            "version": torch.__version__,
            "device": self.options.device,
            "device_name": torch.cuda.get_device_name(self._device) if cuda and torch.cuda.is_available() else None,
            "precision": self.options.precision,
            "options": {
                "threads": torch.get_num_threads(),
                "threads_requested": self.options.threads,
                "interop_threads": torch.get_num_interop_threads(),
                "channels_last": self.options.channels_last,
                "inference_mode": True,
                "autocast": "bf16" if self.options.precision == "bf16" else None,
                "cpu_bf16_instructions": self._cpu_bf16,
                "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if cuda else None,
                "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32) if cuda else None,
                "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32) if cuda else None,
                "cuda_graphs": False,
            },
        }

    def _release(self) -> None:
        self._module = self._inputs = self._result = None
