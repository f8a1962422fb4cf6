"""s2s-ft: fine-tune BERT-like encoders as sequence-to-sequence generators (causal, masked, pseudo-masked)."""
