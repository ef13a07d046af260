"""Super-resolution programs: inference, evaluation, perception-distortion plot, export."""
