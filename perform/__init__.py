"""lstm-jam's instrument: the token language, the ONNX engine and the live loop. Never imports torch."""

__version__ = "0.1.0"
