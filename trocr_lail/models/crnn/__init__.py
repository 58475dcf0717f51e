"""CNN-BiLSTM-CTC line recognizer (HTR best practices, Retsinas et al. 2022). Kept empty: see docs/development.md."""
