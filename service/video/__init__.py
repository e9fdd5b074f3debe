"""Video input: decoding uploaded clips into timestamped, downscaled frames."""
