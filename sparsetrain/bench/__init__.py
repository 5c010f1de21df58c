"""Backward-pass timing of the LSTM methods against cuDNN (`sparsetrain bench`)."""
