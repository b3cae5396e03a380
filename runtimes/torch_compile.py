"""torch.compile of the eager module: TorchDynamo captures the forward, a backend (Inductor by default)
compiles it. CPU and CUDA; fp32, fp16 (CUDA) and bf16 (autocast) as in torch eager.

Compilation is lazy: `load()` builds the module and wraps it, and the first `run()` traces and compiles
it, so compile time lies in the cell's first run (cold start's `first_run_ms`). `info()` records what
Dynamo did: frames compiled in the first run, frames compiled after it (recompiles: a guard failed, e.g.
a new batch size), graph breaks with their reasons, and Inductor's on-disk cache hits and misses (a warm
cache makes a second cold start much shorter: say which one a figure is).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from runtimes.base import Artifact, OptionSpec, RuntimeOptions, UnsupportedConfiguration
from runtimes.torch_eager import TorchEagerRuntime

MODES = ("default", "reduce-overhead", "max-autotune")
# inductor: the default; aot_eager and eager: Dynamo's capture without code generation, to tell whether a
# failure is Dynamo's or Inductor's
BACKENDS = ("inductor", "aot_eager", "eager")
MAX_BREAK_REASONS = 5


def _dynamo_counts(counters: Any) -> dict[str, Any]:
    """A copy of the Dynamo and Inductor counters this runtime records."""
    return {"frames_ok": counters["frames"]["ok"], "graphs": counters["stats"]["unique_graphs"],
            "graph_breaks": Counter(counters["graph_break"]), "inductor": Counter(counters["inductor"])}


class TorchCompileRuntime(TorchEagerRuntime):
    name = "torch-compile"
    preload_modules = ("torch",)
    install_hint = "runtime 'torch-compile' needs PyTorch: pip install 'dnn-harness[torch]'"
    load_includes = ("building the module from the prepared weights, moving it to the device and wrapping it in "
                     "torch.compile; tracing and compiling happen in the first run (first_run_ms)")
    option_prefix = "compile"
    option_specs = {
        "mode": OptionSpec("torch.compile mode (reduce-overhead adds CUDA graphs on CUDA)", MODES, "default"),
        "backend": OptionSpec("compiler backend (aot_eager/eager: capture without code generation)", BACKENDS,
                              "inductor"),
        "freezing": OptionSpec("Inductor freezing: weights as constants, folded and pre-packed (inference only)",
                               ("on", "off"), "on"),
        "cudnn_benchmark": OptionSpec("cuDNN autotuning of convolution kernels per shape (CUDA)", ("on", "off"), "on"),
    }

    @classmethod
    def classify_failure(cls, exc: BaseException) -> str | None:
        """A backend that cannot work here (no C++ compiler for Inductor's CPU code) is unsupported; any
        other compile failure is an error with its message."""
        inner = getattr(exc, "inner_exception", None)  # BackendCompilerFailed and its subclass InductorError
        if type(inner).__name__ == "InvalidCxxCompiler":
            return "unsupported"
        return super().classify_failure(exc)

    def __init__(self, options: RuntimeOptions) -> None:
        super().__init__(options)
        self._after_first_run: dict[str, Any] | None = None

    def load(self, artifact: Artifact) -> None:
        super().load(artifact)
        import torch
        import torch._dynamo
        import torch._inductor.config

        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        torch._inductor.config.freezing = self.options.extra.get("freezing", "on") == "on"
        self._counters = torch._dynamo.utils.counters
        try:
            self._module = torch.compile(self._module, mode=self.options.extra.get("mode", "default"),
                                         backend=self.options.extra.get("backend", "inductor"))
        except RuntimeError as exc:  # e.g. a mode the backend does not take
            raise UnsupportedConfiguration(f"torch.compile refused the settings: {exc}") from None

    def synchronize(self) -> None:
        super().synchronize()
        if self._after_first_run is None:  # the first run: what Dynamo compiled for it
            self._after_first_run = _dynamo_counts(self._counters)

    def _compile_record(self) -> dict[str, Any]:
        if self._after_first_run is None:
            return {"compiled": False}
        now, first = _dynamo_counts(self._counters), self._after_first_run
        breaks = now["graph_breaks"]
        return {"compiled": True,
                "frames_compiled_first_run": first["frames_ok"],
                "recompiles": now["frames_ok"] - first["frames_ok"],
                "graphs": now["graphs"],
                "graph_breaks": sum(breaks.values()),
                "graph_break_reasons": [reason for reason, _ in breaks.most_common(MAX_BREAK_REASONS)],
                "inductor_cache_hits": now["inductor"].get("fxgraph_cache_hit", 0),
                "inductor_cache_misses": now["inductor"].get("fxgraph_cache_miss", 0)}

    def info(self) -> dict[str, Any]:
        info = super().info()
        import torch._inductor.config

        info["options"].update({"compile_mode": self.options.extra.get("mode", "default"),
                                "compile_backend": self.options.extra.get("backend", "inductor"),
                                "inductor_freezing": bool(torch._inductor.config.freezing),
                                **self._compile_record()})
        return info
