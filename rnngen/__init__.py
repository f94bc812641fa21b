"""rnngen: recurrent language models (RNN, LSTM, GRU) from any Hugging Face text corpus."""

__version__ = "0.1.0"
