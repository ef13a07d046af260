"""sfd-basicsr metrics: importing this package registers every `*_metric.py` module with BasicSR."""

from sfd_utils.compat import import_plugin_modules

__all__ = import_plugin_modules(__name__, __file__, "_metric")
