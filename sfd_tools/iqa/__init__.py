"""SFD-IQA programs behind scripts/: evaluation on folders/MOS tables and the ranking report."""
