"""sfd-basicsr models: importing this package registers every `*_model.py` module with BasicSR."""

from sfd_utils.compat import import_plugin_modules

__all__ = import_plugin_modules(__name__, __file__, "_model")
