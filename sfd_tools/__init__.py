"""Programs behind scripts/ for super-resolution: inference, evaluation, PD plot, demo, data makers, export.

They import the registered components (sfd_arch, sfd_model, ...) and sfd_utils; nothing imports them back."""
