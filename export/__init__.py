"""Export: a training checkpoint -> one self-describing single-step .onnx file."""
