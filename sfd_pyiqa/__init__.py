"""pyiqa host support: ``pyiqa.create_metric('sfd_iqa', pretrained_model_path=...)`` scores with SFD-IQA."""
