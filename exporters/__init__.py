"""Turn a catalogue model into something a runtime can run: a torch module today, ONNX files later."""
