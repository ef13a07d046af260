"""The discriminator bake-off: contestants (training side), the run and its report."""
