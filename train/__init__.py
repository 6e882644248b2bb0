"""Training: corpus -> tokens -> an LSTM checkpoint. Run as `python -m train ...`."""
