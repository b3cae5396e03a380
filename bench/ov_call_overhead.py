"""What the host clock adds around an OpenVINO inference called from Python, against OpenVINO's own latency.

benchmark_app reports `InferRequest.latency`, timed in C++ around the inference; the harness's `ov` runtime is
timed by the host clock around `start_async()` + `wait()` from Python. This measures the difference on one
model at batch 1, for both call styles, in interleaved rounds.

Usage: python bench/ov_call_overhead.py ONNX_FILE [--precision bf16|f32] [--rounds 3] [--samples 400]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import openvino as ov


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx_file")
    parser.add_argument("--precision", default="bf16", choices=("bf16", "f32"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=400)
    args = parser.parse_args()
    core = ov.Core()
    model = core.read_model(args.onnx_file)
    model.reshape({model.inputs[0].get_any_name(): [1, 3, 224, 224]})  # the catalogue's 224-pixel models
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": args.precision,
                                                 "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    inputs = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    request.set_input_tensor(ov.Tensor(inputs, shared_memory=True))

    def start_and_wait() -> None:
        request.start_async()
        request.wait()

    for round_index in range(args.rounds):
        for name, call in (("start_async()+wait()", start_and_wait), ("infer()", request.infer)):
            for _ in range(30):
                call()
            host_ms, own_ms = [], []
            for _ in range(args.samples):
                start = time.perf_counter_ns()
                call()
                host_ms.append((time.perf_counter_ns() - start) / 1e6)
                own_ms.append(request.latency)
            host, own = statistics.median(host_ms), statistics.median(own_ms)
            print(f"round {round_index + 1} {name:22} host clock {host:.4f} ms, InferRequest.latency {own:.4f} ms, "
                  f"difference {(host - own) * 1e3:.1f} us ({(host / own - 1) * 100:.2f} %)")


if __name__ == "__main__":
    main()
