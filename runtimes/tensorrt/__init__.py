"""TensorRT engines: `api` (version differences), `cuda_buffers` (device memory, streams, events, graphs),
`engine` (building from the harness's ONNX file), `runtime` (the `trt` runtime). Importing this package
imports no TensorRT or CUDA library."""
