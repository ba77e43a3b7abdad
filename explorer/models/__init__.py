"""Models that produce attention records: the tiny Transformer, CBAM networks and pretrained encoders."""
